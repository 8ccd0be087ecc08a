"""Synthetic PTB-XL: a small data set in the PhysioNet PTB-XL v1.0.3 on-disk layout.

Tests and demos run on it where the real data is absent. The tree holds ``ptbxl_database.csv``
(ecg_id, patient_id, age, sex, scp_codes, strat_fold, filename_lr, filename_hr),
``scp_statements.csv`` (the genuine 71-row table) and WFDB records (16-bit, mV, gain 1000, leads
I, II, III, AVR, AVL, AVF, V1-V6): ``records100/`` always (1000 x 12), ``records500/`` when asked
(5000 x 12, the same ECG: 100 Hz is decimated from the 500 Hz rendering). The files are byte for
byte what ``wfdb.wrsamp`` writes, from a faster writer (wrsamp takes ~40 ms a record).

Each ECG is a cardiac dipole model: Gaussian P, Q, R, S, T waves (and an ST plateau) with a 3D
vector each, placed on an RR series and projected on the lead axes (limb leads obey
III = II - I, aVR = -(I+II)/2, aVL = I - II/2, aVF = II - I/2), plus baseline wander, noise and
per-patient/per-record variation. Statements change it: IMI (Q waves, ST elevation in II, III,
aVF), ASMI (QS waves, ST elevation, poor R in V1-V4 only), LVH (high voltage, strain), CLBBB /
CRBBB (QRS ~140 ms, broad notched R in I/V6 / RSR' in V1), IRBBB (small r' in V1), LAFB (axis
about -60 deg), NDT / ISC_ (T inversion or flattening, ST depression), AFIB (irregular RR, no P,
f waves), LVOLT (low QRS voltage). Rhythm: SR, SARRH, SBRAD (< 60 bpm), STACH (> 100 bpm), AFIB.

Records of the defaults (``write_synthetic_ptbxl(root)``: seed 0, 150 patients, 300 records,
30 per strat_fold) per diagnostic statement with likelihood >= 50 (the top5 task's count):

    NORM 116, NDT 53, IMI 35, LVH 34, ASMI 32 | CLBBB 9, IRBBB 9, ISC_ 9, LAFB 8, CRBBB 7

so top-5 is NORM, NDT, IMI, LVH, ASMI, here and for seeds 1-5 (5th >= 29, 6th <= 14 records).
All keys: IMI 41, ASMI 39, LVH 36 (15 records carry a statement at likelihood 15 or 35); 116
records are NORM alone, 28 have several diagnostic statements; rhythm SR 210, SBRAD 51, AFIB 20,
SARRH 14, STACH 5; form QWAVE 26, NT_ 17, INVT 13, ABQRS 11, VCLVH 11, LOWT 9, LVOLT 7,
HVOLT 6, STD_ 4.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.signal import firwin, resample_poly

__all__ = ["LEADS", "SCP_STATEMENTS_CSV", "synthesize_ecg", "write_synthetic_ptbxl"]

LEADS: tuple[str, ...] = ("I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6")

# The SCP statement table of PTB-XL v1.0.3 (Wagner et al., Scientific Data 2020; PhysioNet),
# copied verbatim. Licence: Creative Commons Attribution 4.0 International (CC-BY 4.0).
SCP_STATEMENTS_CSV = """\
,description,diagnostic,form,rhythm,diagnostic_class,diagnostic_subclass,Statement Category,SCP-ECG Statement Description,AHA code,aECG REFID,CDISC Code,DICOM Code
NDT,non-diagnostic T abnormalities,1.0,1.0,,STTC,STTC,other ST-T descriptive statements,non-diagnostic T abnormalities,,,,
NST_,non-specific ST changes,1.0,1.0,,STTC,NST_,Basic roots for coding ST-T changes and abnormalities,non-specific ST changes,145,MDC_ECG_RHY_STHILOST,,
DIG,digitalis-effect,1.0,1.0,,STTC,STTC,other ST-T descriptive statements,suggests digitalis-effect,205,,,
LNGQT,long QT-interval,1.0,1.0,,STTC,STTC,other ST-T descriptive statements,long QT-interval,148,,,
NORM,normal ECG,1.0,,,NORM,NORM,Normal/abnormal,normal ECG,1,,,F-000B7
IMI,inferior myocardial infarction,1.0,,,MI,IMI,Myocardial Infarction,inferior myocardial infarction,161,,,
ASMI,anteroseptal myocardial infarction,1.0,,,MI,AMI,Myocardial Infarction,anteroseptal myocardial infarction,165,,,
LVH,left ventricular hypertrophy,1.0,,,HYP,LVH,Ventricular Hypertrophy,left ventricular hypertrophy,142,,C71076,
LAFB,left anterior fascicular block,1.0,,,CD,LAFB/LPFB,Intraventricular and intra-atrial Conduction disturbances,left anterior fascicular block,101,MDC_ECG_BEAT_BLK_ANT_L_HEMI,C62267,D3-33140
ISC_,non-specific ischemic,1.0,,,STTC,ISC_,Basic roots for coding ST-T changes and abnormalities,ischemic ST-T changes,226,,,
IRBBB,incomplete right bundle branch block,1.0,,,CD,IRBBB,Intraventricular and intra-atrial Conduction disturbances,incomplete right bundle branch block,105,MDC_ECG_BEAT_RBB_BLK_INCOMP,C71048,D3-33112
1AVB,first degree AV block,1.0,,,CD,_AVB,"Sinus node dysfunction, atrial and AV-conduction defects",first degree AV block,,MDC_ECG_RHY_AV_HEART_BLK_DEG_1,C111088,
IVCD,non-specific intraventricular conduction disturbance (block),1.0,,,CD,IVCD,Intraventricular and intra-atrial Conduction disturbances,non-specific intraventricular conduction disturbance,107,MDC_ECG_BEAT_BLK_IVCD,C62271,D3-33000
ISCAL,ischemic in anterolateral leads,1.0,,,STTC,ISCA,ischemic ST-T changes,in anterolateral leads,,,,
CRBBB,complete right bundle branch block,1.0,,,CD,CRBBB,Intraventricular and intra-atrial Conduction disturbances,(complete) right bundle branch block,106,MDC_ECG_BEAT_RBB_BLK_COMP,C62270,D3-33110
CLBBB,complete left bundle branch block,1.0,,,CD,CLBBB,Intraventricular and intra-atrial Conduction disturbances,(complete) left bundle branch block,104,MDC_ECG_BEAT_LBB_BLK_COMP,C62269,D3-33120 or 122752
ILMI,inferolateral myocardial infarction,1.0,,,MI,IMI,Myocardial Infarction,inferolateral myocardial infarction,,,,
LAO/LAE,left atrial overload/enlargement,1.0,,,HYP,LAO/LAE,Atrial statements,left atrial overload/enlargement,140,,,
AMI,anterior myocardial infarction,1.0,,,MI,AMI,Myocardial Infarction,anterior myocardial infarction,160,,,
ALMI,anterolateral myocardial infarction,1.0,,,MI,AMI,Myocardial Infarction,anterolateral myocardial infarction,,,,
ISCIN,ischemic in inferior leads,1.0,,,STTC,ISCI,ischemic ST-T changes,in inferior leads,,,,
INJAS,subendocardial injury in anteroseptal leads,1.0,,,MI,AMI,ischemic ST-T changes compatible with subendocardial injury,in anteroseptal leads,,,,
LMI,lateral myocardial infarction,1.0,,,MI,LMI,Myocardial Infarction,lateral myocardial infarction,163,,,
ISCIL,ischemic in inferolateral leads,1.0,,,STTC,ISCI,ischemic ST-T changes,in inferolateral leads,,,,
LPFB,left posterior fascicular block,1.0,,,CD,LAFB/LPFB,Intraventricular and intra-atrial Conduction disturbances,left posterior fascicular block,102,MDC_ECG_BEAT_BLK_POS_L_HEMI,C62268,D3-33150
ISCAS,ischemic in anteroseptal leads,1.0,,,STTC,ISCA,ischemic ST-T changes,in anteroseptal leads,,,,
INJAL,subendocardial injury in anterolateral leads,1.0,,,MI,AMI,ischemic ST-T changes compatible with subendocardial injury,in anterolateral leads,,,,
ISCLA,ischemic in lateral leads,1.0,,,STTC,ISCA,ischemic ST-T changes,in lateral leads,,,,
RVH,right ventricular hypertrophy,1.0,,,HYP,RVH,Ventricular Hypertrophy,right ventricular hypertrophy,143,,C71077,
ANEUR,ST-T changes compatible with ventricular aneurysm,1.0,,,STTC,STTC,other ST-T descriptive statements,ST-T changes compatible with ventricular aneurysm,227,,,
RAO/RAE,right atrial overload/enlargement,1.0,,,HYP,RAO/RAE,Atrial statements,right atrial overload/enlargement,141,,,
EL,electrolytic disturbance or drug (former EDIS),1.0,,,STTC,STTC,physiopathological nature of ST-T changes,compatible with electrolyte abnormalities,,,,
WPW,Wolf-Parkinson-White syndrome,1.0,,,CD,WPW,Intraventricular and intra-atrial Conduction disturbances,Wolff-Parkinson-White syndrome,,MDC_ECG_RHY_WPW_UNK,C35132,
ILBBB,incomplete left bundle branch block,1.0,,,CD,ILBBB,Intraventricular and intra-atrial Conduction disturbances,incomplete left bundle branch block,,MDC_ECG_BEAT_LBB_BLK_INCOMP,C71047,
IPLMI,inferoposterolateral myocardial infarction,1.0,,,MI,IMI,Myocardial Infarction,inferoposterolateral myocardial infarction,,,,
ISCAN,ischemic in anterior leads,1.0,,,STTC,ISCA,ischemic ST-T changes,in anterior leads,,,,
IPMI,inferoposterior myocardial infarction,1.0,,,MI,IMI,Myocardial Infarction,inferoposterior myocardial infarction,,,,
SEHYP,septal hypertrophy,1.0,,,HYP,SEHYP,Ventricular Hypertrophy,septal hypertrophy,,,,
INJIN,subendocardial injury in inferior leads,1.0,,,MI,IMI,ischemic ST-T changes compatible with subendocardial injury,in inferior leads,,,,
INJLA,subendocardial injury in lateral leads,1.0,,,MI,AMI,ischemic ST-T changes compatible with subendocardial injury,in lateral leads,,,,
PMI,posterior myocardial infarction,1.0,,,MI,PMI,Myocardial Infarction,posterior myocardial infarction,162,,,
3AVB,third degree AV block,1.0,,,CD,_AVB,"Sinus node dysfunction, atrial and AV-conduction defects",third degree AV block,88,MDC_ECG_RHY_AV_HEART_BLK_DEG_3,C111091,D3-32102
INJIL,subendocardial injury in inferolateral leads,1.0,,,MI,IMI,ischemic ST-T changes compatible with subendocardial injury,in inferolateral leads,,,,
2AVB,second degree AV block,1.0,,,CD,_AVB,"Sinus node dysfunction, atrial and AV-conduction defects",second degree AV block,,MDC_ECG_RHY_AV_HEART_BLK_DEG_2,C62016,R-F81AE
ABQRS,abnormal QRS,,1.0,,,,Normal/abnormal,abnormal QRS,,,,
PVC,ventricular premature complex,,1.0,,,,Statements related to ectopic rhythm abnormalities,ventricular premature complex (beat),60,MDC_ECG_BEAT_V_P_C,,
STD_,non-specific ST depression,,1.0,,,,Basic roots for coding ST-T changes and abnormalities,non-specific ST depression,502,,,F-38278
VCLVH,voltage criteria (QRS) for left ventricular hypertrophy,,1.0,,,,Ventricular Hypertrophy,voltage criteria (QRS) for left ventricular hypertrophy,,,,
QWAVE,Q waves present,,1.0,,,,Other QRS morphology descriptive statements,Q waves present,,,,
LOWT,low amplitude T-waves,,1.0,,,,other ST-T descriptive statements,low amplitude T-waves,366,,,
NT_,non-specific T-wave changes,,1.0,,,,Basic roots for coding ST-T changes and abnormalities,non-specific T-wave changes,,,,
PAC,atrial premature complex,,1.0,,,,Statements related to ectopic rhythm abnormalities,atrial premature complex (beat),30,MDC_ECG_BEAT_ATR_P_C,,
LPR,prolonged PR interval,,1.0,,,,Statements related to impulse formation (abnormalities),Prolonged PR interval,82,,,
INVT,inverted T-waves,,1.0,,,,other ST-T descriptive statements,inverted T-waves,367,,,
LVOLT,low QRS voltages in the frontal and horizontal leads,,1.0,,,,Other QRS morphology descriptive statements,low QRS voltages in the frontal and horizontal leads,,,,
HVOLT,high QRS voltage,,1.0,,,,Other QRS morphology descriptive statements,high QRS voltage,,,,
TAB_,T-wave abnormality,,1.0,,,,Basic roots for coding ST-T changes and abnormalities,T-wave abnormality,147,,,
STE_,non-specific ST elevation,,1.0,,,,Basic roots for coding ST-T changes and abnormalities,non-specific ST elevation,501,MDC_ECG_RHY_STELVATION,,F-38277
PRC(S),premature complex(es),,1.0,,,,Statements related to ectopic rhythm abnormalities,premature complex(es),,,,
SR,sinus rhythm,,,1.0,,,Statements related to impulse formation (abnormalities),sinus rhythm,20,MDC_ECG_RHY_SINUS_RHY,,
AFIB,atrial fibrillation,,,1.0,,,Statements related to impulse formation (abnormalities),atrial fibrillation,50,MDC_ECG_RHY_ATR_FIB,,D3-31520
STACH,sinus tachycardia,,,1.0,,,Statements related to impulse formation (abnormalities),sinus tachycardia,21,MDC_ECG_RHY_SINUS_TACHY,,
SARRH,sinus arrhythmia,,,1.0,,,Statements related to impulse formation (abnormalities),sinus arrhythmia,23,MDC_ECG_RHY_SINUS_ARRHY,,
SBRAD,sinus bradycardia,,,1.0,,,Statements related to impulse formation (abnormalities),sinus bradycardia,22,MDC_ECG_RHY_SINUS_BRADY,,
PACE,normal functioning artificial pacemaker,,,1.0,,,Pacemaker types and pacemaker function,normal functioning artificial pacemaker,,,,
SVARR,supraventricular arrhythmia,,,1.0,,,Statements related to impulse formation (abnormalities),supraventricular arrhythmia,,,,
BIGU,"bigeminal pattern (unknown origin, SV or Ventricular)",,,1.0,,,Statements related to ectopic rhythm abnormalities,"bigeminal pattern (unknown origin, SV or Ventricular)",,,,
AFLT,atrial flutter,,,1.0,,,Statements related to impulse formation (abnormalities),atrial flutter,51,MDC_ECG_RHY_ATR_FLUT,,
SVTAC,supraventricular tachycardia,,,1.0,,,Statements related to impulse formation (abnormalities),supraventricular tachycardia,55,MDC_ECG_RHY_SV_TACHY,,D3-31290
PSVT,paroxysmal supraventricular tachycardia,,,1.0,,,Statements related to impulse formation (abnormalities),paroxysmal supraventricular tachycardia,,MDC_ECG_RHY_SV_TACHY_PAROX,,
TRIGU,"trigeminal pattern (unknown origin, SV or Ventricular)",,,1.0,,,Statements related to ectopic rhythm abnormalities,"trigeminal pattern (unknown origin, SV or Ventricular)",,,,
"""  # noqa: E501

_RENDER_FS = 500  # ECGs are rendered at >= 500 Hz and decimated to lower rates
_ADC_GAIN = 1000.0  # adc units per mV, as in PTB-XL

# Patient profiles (main diagnosis) and their share of patients (allocated by quota, so the
# frequencies hardly depend on the seed).
_PROFILES: tuple[tuple[str, float], ...] = (
    ("NORM", 0.38), ("IMI", 0.13), ("ASMI", 0.13), ("LVH", 0.12), ("NDT", 0.07),
    ("LAFB", 0.03), ("IRBBB", 0.03), ("ISC_", 0.015), ("CLBBB", 0.025), ("CRBBB", 0.025),
    ("AFIB", 0.025),
)  # fmt: skip


# --- geometry ------------------------------------------------------------------------------------
# Dipole coordinates: x = patient's left, y = inferior (towards the feet), z = anterior.


def _lead_matrix() -> np.ndarray:
    """(3, 12) lead vectors: limb leads from I and II by Einthoven/Goldberger, precordials."""
    lead_i = np.array([1.0, 0.0, 0.0])
    lead_ii = np.array([0.5, math.sqrt(3) / 2, 0.0])
    limb = [
        lead_i, lead_ii, lead_ii - lead_i, -(lead_i + lead_ii) / 2,
        lead_i - lead_ii / 2, lead_ii - lead_i / 2,
    ]  # fmt: skip
    # Horizontal-plane angle from the left (x) towards anterior (z), and a proximity gain.
    angles = (115.0, 92.0, 72.0, 52.0, 28.0, 5.0)
    gains = (1.1, 1.6, 1.65, 1.6, 1.3, 1.0)
    prec = [
        g * np.array([math.cos(math.radians(a)), 0.1, math.sin(math.radians(a))])
        for a, g in zip(angles, gains, strict=True)
    ]
    return np.stack(limb + prec, axis=1)


_LEAD_MATRIX = _lead_matrix()
_V1_V4 = slice(6, 10)
_EFFECTS = ("LVH", "LAFB", "IMI", "ASMI", "CLBBB", "CRBBB", "IRBBB", "NDT", "ISC_")
# Near-field corrections of the precordial R and S waves (a single dipole makes the R/S
# transition across V1-V6 too gradual); limb leads stay pure projections.
_R_NEAR = np.array([1.0] * 6 + [1.0, 1.0, 1.0, 1.25, 1.15, 1.1])
_S_NEAR = np.array([1.0] * 6 + [1.0, 1.0, 0.75, 0.45, 0.3, 0.3])


def _rot(vec: np.ndarray, frontal_deg: float = 0.0, horizontal_deg: float = 0.0) -> np.ndarray:
    """Rotate a dipole vector in the frontal (x-y) then the horizontal (x-z) plane."""
    a, b = math.radians(frontal_deg), math.radians(horizontal_deg)
    x, y, z = vec
    x, y = x * math.cos(a) - y * math.sin(a), x * math.sin(a) + y * math.cos(a)
    x, z = x * math.cos(b) - z * math.sin(b), x * math.sin(b) + z * math.cos(b)
    return np.array([x, y, z])


def _project(vec: np.ndarray) -> np.ndarray:
    return np.asarray(vec, dtype=np.float64) @ _LEAD_MATRIX


def _derive_limb(sig: np.ndarray) -> np.ndarray:
    """Recompute III, aVR, aVL, aVF from I and II in place (as an ECG machine does)."""
    i, ii = sig[:, 0].copy(), sig[:, 1].copy()
    sig[:, 2] = ii - i
    sig[:, 3] = -(i + ii) / 2
    sig[:, 4] = i - ii / 2
    sig[:, 5] = ii - i / 2
    return sig


# --- ECG parameters ------------------------------------------------------------------------------


@dataclass
class _Wave:
    """One wave per beat: flat top [start, end] s after the R peak, Gaussian flanks, lead amps."""

    start: float
    sigma_l: float
    sigma_r: float
    amp: np.ndarray  # (12,) mV
    end: float | None = None  # None: a plain Gaussian (end == start)
    qt_scaled: bool = False  # centre (Gaussian) or end (plateau) scales with sqrt(RR)
    qrs: bool = False  # part of the QRS complex (voltage statements scale it)


@dataclass
class _Patient:
    frontal_deg: float
    horizontal_deg: float
    scale: float
    hr: float
    pr: float
    qrs_width: float
    t_scale: float


@dataclass
class _Ecg:
    waves: list[_Wave] = field(default_factory=list)
    hr: float = 70.0
    rr_cv: float = 0.02
    resp_mod: float = 0.02
    afib: bool = False
    fwave_amp: float = 0.0


def _draw_patient(rng: np.random.Generator) -> _Patient:
    return _Patient(
        frontal_deg=float(rng.normal(0.0, 14.0)),
        horizontal_deg=float(np.clip(rng.normal(0.0, 8.0), -16.0, 16.0)),
        scale=float(np.clip(np.exp(rng.normal(0.0, 0.15)), 0.8, 1.3)),
        hr=float(rng.uniform(54.0, 96.0)),
        pr=float(rng.uniform(0.13, 0.19)),
        qrs_width=float(rng.uniform(0.9, 1.12)),
        t_scale=float(rng.uniform(0.8, 1.25)),
    )


def _severity(likelihood: float, u: float) -> float:
    """Strength of a finding from a uniform draw u: uncertain ones (likelihood < 50) are subtler."""
    return 0.35 + 0.25 * u if likelihood < 50 else 0.75 + 0.5 * u


def _build_ecg(
    statements: Mapping[str, float], patient: _Patient, rng: np.random.Generator, hr: float
) -> _Ecg:
    """Wave list of one record for its statements (a dict code -> likelihood).

    It takes the same number of draws from rng whatever the statements, so two calls with equal
    rng states differ only by the statements' effects (e.g. ASMI alters V1-V4 and nothing else).
    """
    scale = patient.scale * float(rng.uniform(0.9, 1.1))
    fr = patient.frontal_deg + float(rng.normal(0.0, 3.0))
    hz = patient.horizontal_deg + float(rng.normal(0.0, 3.0))
    w = patient.qrs_width
    u = rng.random(len(_EFFECTS))
    sev = {c: _severity(statements[c], u[i]) for i, c in enumerate(_EFFECTS) if c in statements}
    coin = rng.random(5)
    rhythm = rng.random(5)

    p_vec = _rot(np.array([0.45, 0.8, 0.15]), fr / 2) * 0.15
    q_vec = _rot(np.array([-0.55, 0.15, 0.8]), fr, hz) * 0.2
    r_vec = _rot(np.array([0.6, 0.75, 0.15]), fr, hz) * 1.15  # frontal axis ~51 deg
    s_vec = _rot(np.array([-0.25, -0.2, -1.0]), fr / 2, hz) * 0.75
    t_vec = _rot(np.array([0.6, 0.55, 0.25]), fr / 2, hz) * 0.45 * patient.t_scale
    st_vec = np.zeros(3)
    st_lead = np.zeros(12)  # lead-space ST changes (precordial only)
    t_lead_mult = np.ones(12)
    q_lead_mult = np.ones(12)
    r_lead_mult = _R_NEAR.copy()
    j_point, t_delay, r_sigma, s_sigma = 0.05, 0.0, 0.011 * w, 0.010 * w
    extra: list[_Wave] = []
    no_septal = False

    if "LVH" in sev:
        k = sev["LVH"]
        r_vec = (r_vec + np.array([0.35, -0.1, -0.25]) * k) * (1.0 + 1.0 * k)
        s_vec = s_vec * (1.0 + 1.3 * k)
        r_sigma *= 1.1
        strain = "NDT" in sev or "ISC_" in sev or coin[0] < 0.3
        if strain:
            t_vec = _rot(np.array([-0.5, 0.2, 0.45]), fr / 2) * 0.25 * k
            st_vec = st_vec + np.array([-0.06, -0.01, 0.03]) * k
    if "LAFB" in sev:
        k = min(sev["LAFB"], 1.0)
        axis = math.radians(-66.0 + 12.0 * coin[1])
        mag = math.hypot(r_vec[0], r_vec[1])
        new = np.array([mag * math.cos(axis), mag * math.sin(axis), r_vec[2]])
        r_vec = (1 - k) * r_vec + k * new
        q_vec = np.array([-0.3, 0.8, 0.2]) * 0.2
        s_vec = s_vec + np.array([0.0, -0.25, 0.0]) * k
    if "IMI" in sev:
        k = sev["IMI"]
        extra.append(
            _Wave(-0.024, 0.016, 0.012, _project(np.array([0.05, -1.0, 0.0]) * 0.4 * k), qrs=True)
        )
        r_vec = r_vec * np.array([1.0, 1.0 - 0.5 * min(k, 1.0), 1.0])
        st_vec = st_vec + np.array([0.0, 1.0, 0.0]) * 0.14 * k
        if coin[2] < 0.5:
            t_vec = t_vec - np.array([0.0, 1.0, 0.0]) * 0.3 * k
    if "ASMI" in sev:  # confined to V1-V4
        k = sev["ASMI"]
        q_lead_mult[_V1_V4] = max(0.0, 1.0 - k)
        r_lead_mult[_V1_V4] *= max(0.2, 1.0 - 0.7 * k)
        qs = np.zeros(12)
        qs[_V1_V4] = -np.array([0.3, 0.55, 0.55, 0.3]) * k
        extra.append(_Wave(-0.016, 0.018, 0.014, qs, qrs=True))
        st_lead[_V1_V4] += np.array([0.1, 0.22, 0.22, 0.12]) * k
        if coin[3] < 0.5:
            t_lead_mult[_V1_V4] *= -0.6
    if "CLBBB" in sev:
        no_septal = True
        k = min(sev["CLBBB"], 1.2)
        r1 = np.array([0.75, 0.25, -0.6]) * 1.0
        r2 = np.array([0.8, 0.1, -0.55]) * 1.1
        extra.append(_Wave(-0.02, 0.024, 0.022, _project(r1), qrs=True))
        extra.append(_Wave(0.04, 0.022, 0.026, _project(r2), qrs=True))
        r_vec = r_vec * max(0.0, 1.0 - k) * 0.3
        s_vec = s_vec * 0.2
        t_vec = -np.array([0.6, 0.2, -0.5]) * 0.3
        st_vec = st_vec - np.array([0.6, 0.2, -0.5]) * 0.1
        j_point, t_delay = 0.1, 0.05
    if "CRBBB" in sev:
        k = min(sev["CRBBB"], 1.2)
        rp = np.array([-0.55, 0.1, 0.85]) * 0.9 * k
        extra.append(_Wave(0.065, 0.022, 0.026, _project(rp), qrs=True))
        s_sigma *= 1.6
        t_vec = t_vec * np.array([1.0, 1.0, -1.0]) - np.array([0.0, 0.0, 0.05])
        j_point, t_delay = 0.11, 0.04
    if "IRBBB" in sev:
        k = min(sev["IRBBB"], 1.2)
        rp = np.array([-0.5, 0.0, 0.85]) * 0.45 * k
        extra.append(_Wave(0.04, 0.010, 0.011, _project(rp), qrs=True))
    if "NDT" in sev:
        k = sev["NDT"]
        region = "anterior" if "ASMI" in sev else ("lateral", "inferior", "flat")[int(coin[4] * 3)]
        if region == "lateral":
            t_vec = t_vec - np.array([1.0, 0.0, 0.3]) * 0.5 * k
        elif region == "inferior":
            t_vec = t_vec - np.array([0.0, 1.0, 0.0]) * 0.5 * k
        elif region == "flat":
            t_vec = t_vec * max(0.05, 1.0 - 0.85 * k)
        else:
            t_lead_mult[_V1_V4] *= -0.6
    if "ISC_" in sev:
        k = sev["ISC_"]
        st_vec = st_vec - np.array([0.5, 0.45, 0.2]) * 0.2 * k
        t_vec = t_vec - np.array([0.8, 0.2, 0.1]) * 0.5 * k
    afib = "AFIB" in statements

    waves: list[_Wave] = []
    if not afib:
        waves.append(_Wave(-patient.pr, 0.022, 0.022, _project(p_vec)))
    if not no_septal:
        waves.append(_Wave(-0.028 * w, 0.008, 0.008, _project(q_vec) * q_lead_mult, qrs=True))
    waves.append(_Wave(0.0, r_sigma, r_sigma, _project(r_vec) * r_lead_mult, qrs=True))
    waves.append(_Wave(0.028 * w, s_sigma, s_sigma * 1.2, _project(s_vec) * _S_NEAR, qrs=True))
    waves.extend(extra)
    st_amp = _project(st_vec) + st_lead
    if np.any(st_amp != 0):
        waves.append(_Wave(j_point, 0.012, 0.05, st_amp, end=0.17 + t_delay, qt_scaled=True))
    t_amp = _project(t_vec) * t_lead_mult
    waves.append(_Wave(0.27 + t_delay, 0.06, 0.042, t_amp, qt_scaled=True))

    voltage = scale
    if "LVOLT" in statements:
        voltage *= 0.4
    elif "HVOLT" in statements:
        voltage *= 1.35
    for wave in waves:
        if wave.qrs:
            wave.amp = wave.amp * voltage

    ecg = _Ecg(waves=waves, hr=hr, afib=afib)
    ecg.rr_cv = 0.01 + 0.015 * float(rhythm[0])
    ecg.resp_mod = 0.01 + 0.02 * float(rhythm[1])
    if "SARRH" in statements:
        ecg.resp_mod = 0.07 + 0.03 * float(rhythm[2])
    if afib:
        ecg.rr_cv = 0.18 + 0.1 * float(rhythm[3])
        ecg.resp_mod = 0.0
        ecg.fwave_amp = 0.03 + 0.05 * float(rhythm[4])
    return ecg


# --- rendering -----------------------------------------------------------------------------------


def _beat_times(ecg: _Ecg, duration_s: float, rng: np.random.Generator) -> np.ndarray:
    rr0 = 60.0 / ecg.hr
    n = int(duration_s / rr0 * 1.6) + 8
    if ecg.afib:
        shape = 1.0 / ecg.rr_cv**2
        rr = rng.gamma(shape, rr0 / shape, n)
        rr = np.maximum(rr, 0.28)
    else:
        rr = rr0 * (1.0 + ecg.rr_cv * rng.standard_normal(n))
        phase = np.cumsum(rr) * 2 * np.pi * rng.uniform(0.2, 0.33) + rng.uniform(0, 2 * np.pi)
        rr = rr * (1.0 + ecg.resp_mod * np.sin(phase))
    times = np.cumsum(rr) - rng.uniform(0.0, rr0) - rr0
    keep = (times > -1.0) & (times < duration_s + 1.0)
    return times[keep]


def _wave_train(
    n: int, fs: float, start: np.ndarray, end: np.ndarray, sl: float, sr: float, weight: np.ndarray
) -> np.ndarray:
    """Sum over beats of one wave shape (flat top [start, end], Gaussian flanks), length n."""
    lo = np.floor((start - 4.0 * sl) * fs).astype(np.int64)
    hi = np.ceil((end + 4.0 * sr) * fs).astype(np.int64)
    width = int((hi - lo).max()) + 1
    idx = lo[:, None] + np.arange(width)[None, :]
    t = idx / fs
    left = np.exp(-0.5 * ((t - start[:, None]) / sl) ** 2)
    right = np.exp(-0.5 * ((t - end[:, None]) / sr) ** 2)
    v = np.where(t < start[:, None], left, np.where(t > end[:, None], right, 1.0))
    v *= weight[:, None]
    ok = (idx >= 0) & (idx < n) & (idx <= hi[:, None])
    return np.bincount(idx[ok], weights=v[ok], minlength=n)


def _render(ecg: _Ecg, fs: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """Float64 (n, 12) millivolts at fs."""
    duration = n / fs
    beats = _beat_times(ecg, duration, rng)
    rr = np.diff(beats, prepend=beats[:1] - 60.0 / ecg.hr)
    qt = np.sqrt(np.clip(rr, 0.3, 1.6))
    beat_amp = 1.0 + 0.02 * rng.standard_normal(beats.size)
    beat_amp *= 1.0 + 0.04 * np.sin(beats * 2 * np.pi * rng.uniform(0.2, 0.33))
    sig = np.zeros((n, 12))
    shapes = np.zeros((n, len(ecg.waves)))
    amps = np.empty((len(ecg.waves), 12))
    for j, wave in enumerate(ecg.waves if beats.size else []):
        stretch = qt if wave.qt_scaled else 1.0
        if wave.end is None:  # a Gaussian: its centre moves with QT
            start = end = beats + wave.start * stretch
        else:  # a plateau: starts at the J point, ends with QT
            start, end = beats + wave.start, beats + wave.end * stretch
        weight = beat_amp if wave.qrs else np.ones(beats.size)
        shapes[:, j] = _wave_train(n, fs, start, end, wave.sigma_l, wave.sigma_r, weight)
        amps[j] = wave.amp
    if beats.size:
        sig += shapes @ amps
    t = np.arange(n) / fs
    if ecg.afib and ecg.fwave_amp > 0:
        f = np.zeros(n)
        for _ in range(3):
            freq = rng.uniform(4.5, 7.5)
            env = 1.0 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.1, 0.4) * t + rng.uniform(0, 6.3))
            f += env * np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi))
        sig += np.outer(f / 3.0, _project(np.array([-0.3, 0.6, 0.7]))) * ecg.fwave_amp * 2.0
    # baseline wander (two slow sinusoids per lead) and broadband noise
    freqs = rng.uniform(0.05, 0.45, (2, 12))
    phases = rng.uniform(0.0, 2 * np.pi, (2, 12))
    wander_amp = rng.uniform(0.01, 0.08) * rng.uniform(0.5, 1.5, (2, 12))
    for k in range(2):
        sig += wander_amp[k] * np.sin(2 * np.pi * freqs[k] * t[:, None] + phases[k])
    noise = rng.uniform(0.008, 0.025) * np.sqrt(fs / _RENDER_FS)
    sig += noise * rng.standard_normal((n, 12))
    return _derive_limb(sig)


@functools.lru_cache(maxsize=8)
def _antialias(factor: int) -> np.ndarray:
    """resample_poly's default FIR for decimation by factor (cached: designing it is slow)."""
    return firwin(20 * factor + 1, 1.0 / factor, window=("kaiser", 5.0))


def _decimate(sig: np.ndarray, factor: int) -> np.ndarray:
    if factor == 1:
        return sig
    return resample_poly(sig, 1, factor, axis=0, window=_antialias(factor), padtype="line")


def _statement_dict(statements: Mapping[str, float] | Iterable[str]) -> dict[str, float]:
    if isinstance(statements, Mapping):
        return {str(k): float(v) for k, v in statements.items()}
    return {str(code): 100.0 for code in statements}


def _synthesize(
    codes: Mapping[str, float],
    fs: int,
    n: int,
    rng: np.random.Generator,
    patient: _Patient,
    hr: float,
) -> np.ndarray:
    """Render at >= 500 Hz then decimate to fs; float64 (n, 12)."""
    ecg = _build_ecg(codes, patient, rng, hr)
    factor = max(1, math.ceil(_RENDER_FS / fs))
    sig = _render(ecg, fs * factor, n * factor, rng)
    return _derive_limb(_decimate(sig, factor))


def _draw_hr(codes: Mapping[str, float], base: float, rng: np.random.Generator) -> float:
    if "AFIB" in codes:
        return float(rng.uniform(65.0, 120.0))
    if "STACH" in codes:
        return float(rng.uniform(102.0, 125.0))
    if "SBRAD" in codes:
        return float(rng.uniform(46.0, 58.0))
    return float(np.clip(base * np.exp(rng.normal(0.0, 0.06)), 48.0, 112.0))


def synthesize_ecg(
    statements: Mapping[str, float] | Iterable[str],
    fs: int = 100,
    duration_s: float = 10.0,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """One synthetic 12-lead ECG, shape (fs*duration_s, 12), float32, millivolts.

    ``statements`` are SCP codes (a PTB-XL scp_codes dict or a list, likelihood 100). Rhythm
    codes AFIB, STACH, SBRAD, SARRH set the rhythm; otherwise sinus rhythm at 50-100 bpm.
    """
    rng = np.random.default_rng() if rng is None else rng
    codes = _statement_dict(statements)
    patient = _draw_patient(rng)
    patient.hr = float(rng.uniform(52.0, 98.0))
    hr = _draw_hr(codes, patient.hr, rng)
    if not {"AFIB", "STACH", "SBRAD"} & set(codes):
        hr = min(max(hr, 50.0), 100.0)
    n = int(round(fs * duration_s))
    return _synthesize(codes, fs, n, rng, patient, hr).astype(np.float32)


# --- the data set --------------------------------------------------------------------------------


def _likelihood(code: str, rng: np.random.Generator) -> float:
    if code == "NORM":
        return float(rng.choice([100.0, 80.0, 50.0], p=[0.8, 0.15, 0.05]))
    if code in ("IMI", "ASMI", "LVH"):
        return float(rng.choice([100.0, 80.0, 50.0, 35.0, 15.0], p=[0.65, 0.1, 0.13, 0.05, 0.07]))
    return float(rng.choice([100.0, 80.0, 50.0], p=[0.9, 0.03, 0.07]))


def _patient_diagnoses(profile: str, rng: np.random.Generator) -> tuple[list[str], bool]:
    """Diagnostic statements of a patient and whether they have atrial fibrillation."""
    if profile == "AFIB":
        return (["NDT"] if rng.random() < 0.5 else []), True
    codes = [profile]

    def maybe(code: str, p: float) -> None:
        if rng.random() < p:
            codes.append(code)

    if profile == "IMI":
        maybe("NDT", 0.15)
        maybe("ISC_", 0.06)
    elif profile == "ASMI":
        maybe("NDT", 0.1)
    elif profile == "LVH":
        maybe("NDT", 0.25)
        maybe("ISC_", 0.1)
    elif profile == "CRBBB":
        maybe("LAFB", 0.2)
    # no AFIB with ASMI: its signal stays confined to V1-V4 (for attribution tests)
    afib = profile not in ("NORM", "ASMI") and rng.random() < 0.07
    return codes, afib


def _form_statements(diag: list[str], rng: np.random.Generator) -> list[str]:
    options: dict[str, list[tuple[str, float]]] = {
        "NORM": [("LVOLT", 0.03)],
        "IMI": [("QWAVE", 0.3), ("ABQRS", 0.2)],
        "ASMI": [("QWAVE", 0.25), ("ABQRS", 0.2)],
        "LVH": [("VCLVH", 0.4), ("HVOLT", 0.1)],
        "NDT": [("NT_", 0.3), ("LOWT", 0.2), ("INVT", 0.2)],
        "ISC_": [("STD_", 0.4), ("INVT", 0.2)],
        "CLBBB": [("ABQRS", 0.1)],
    }
    out: list[str] = []
    for code in diag:
        for form, p in options.get(code, []):
            if form not in out and rng.random() < p:
                out.append(form)
    if "HVOLT" in out and "LVOLT" in out:
        out.remove("HVOLT")
    return out


def _folder(ecg_id: int) -> str:
    return f"{ecg_id // 1000 * 1000:05d}"


def _quota(n: int, rng: np.random.Generator) -> list[str]:
    """Profile of each of n patients: largest-remainder quotas, shuffled."""
    names = [p for p, _ in _PROFILES]
    share = np.array([s for _, s in _PROFILES])
    exact = share / share.sum() * n
    counts = np.floor(exact).astype(int)
    rest = exact - counts
    order = np.lexsort((rng.random(len(rest)), -rest))
    counts[order[: n - counts.sum()]] += 1
    profiles = [name for name, c in zip(names, counts, strict=True) for _ in range(c)]
    return [profiles[i] for i in rng.permutation(n)]


def write_synthetic_ptbxl(
    root: str | Path,
    n_patients: int = 150,
    seed: int = 0,
    rates: tuple[int, ...] = (100,),
    records_per_patient: tuple[int, int] = (1, 3),
    progress: bool = False,
) -> Path:
    """Write a synthetic PTB-XL tree under root and return root."""
    root = Path(root)
    rates = tuple(sorted(set(rates)))
    if not set(rates) <= {100, 500} or 100 not in rates:
        raise ValueError(f"rates must be (100,) or (100, 500), got {rates}")
    lo, hi = records_per_patient
    if n_patients < 1 or lo < 1 or hi < lo:
        raise ValueError("need n_patients >= 1 and 1 <= records_per_patient[0] <= [1]")
    meta_seq, sig_seq = np.random.SeedSequence(seed).spawn(2)
    rng = np.random.default_rng(meta_seq)

    profiles = _quota(n_patients, rng)
    # Stratified by profile: folds dealt round-robin, and record counts cycled through lo..hi,
    # over the patients sorted by profile (so each profile gets its share of records).
    by_profile = sorted(range(n_patients), key=lambda i: (profiles[i], rng.random()))
    folds = np.empty(n_patients, dtype=np.int64)
    n_records = np.empty(n_patients, dtype=np.int64)
    start, span = int(rng.integers(10)), hi - lo + 1
    cycle = rng.permutation(span)
    for rank, i in enumerate(by_profile):
        folds[i] = (start + rank) % 10 + 1
        n_records[i] = lo + cycle[rank % span]
    patient_ids = rng.choice(np.arange(1, 21800), size=n_patients, replace=False)

    rows: list[dict] = []
    patients: list[_Patient] = []
    for i, profile in enumerate(profiles):
        diag, afib = _patient_diagnoses(profile, rng)
        patient = _draw_patient(rng)
        patients.append(patient)
        normal = profile == "NORM"
        age = float(rng.integers(20, 76) if normal else rng.integers(40, 91))
        female = rng.random() < (0.35 if profile in ("IMI", "ASMI") else 0.5)
        for _ in range(int(n_records[i])):
            codes = {c: _likelihood(c, rng) for c in diag}
            for form in _form_statements(diag, rng):
                codes[form] = 0.0
            if afib:
                rhythm, hr = "AFIB", _draw_hr({"AFIB": 0.0}, patient.hr, rng)
            else:
                hr = _draw_hr({}, patient.hr, rng)
                rhythm = "SBRAD" if hr < 60 else "STACH" if hr > 100 else "SR"
                if rhythm == "SR" and rng.random() < 0.04:
                    rhythm = "SARRH"
            codes[rhythm] = 0.0
            rows.append(
                {
                    "patient": i,
                    "patient_id": float(patient_ids[i]),
                    "age": age,
                    "sex": int(female),
                    "scp_codes": codes,
                    "strat_fold": int(folds[i]),
                    "hr": hr,
                }
            )
    order = rng.permutation(len(rows))
    rows = [rows[j] for j in order]
    sig_seeds = sig_seq.spawn(len(rows))

    for fs in rates:
        (root / f"records{fs}").mkdir(parents=True, exist_ok=True)
    iterator: Iterable[int] = range(len(rows))
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, desc="synthetic PTB-XL", unit="record")
    records = []
    for j in iterator:
        row, ecg_id = rows[j], j + 1
        folder = _folder(ecg_id)
        srng = np.random.default_rng(sig_seeds[j])
        patient = patients[row["patient"]]
        codes = row["scp_codes"]
        ecg = _build_ecg(codes, patient, srng, row["hr"])
        hi_res = _render(ecg, _RENDER_FS, 10 * _RENDER_FS, srng)
        lo_res = _derive_limb(_decimate(hi_res, _RENDER_FS // 100))
        signals = {100: lo_res, 500: hi_res}
        for fs in rates:
            suffix = "lr" if fs == 100 else "hr"
            out_dir = root / f"records{fs}" / folder
            out_dir.mkdir(exist_ok=True)
            _write_record(out_dir, f"{ecg_id:05d}_{suffix}", signals[fs], fs)
        records.append(
            {
                "ecg_id": ecg_id,
                "patient_id": row["patient_id"],
                "age": row["age"],
                "sex": row["sex"],
                "scp_codes": repr(codes),
                "strat_fold": row["strat_fold"],
                "filename_lr": f"records100/{folder}/{ecg_id:05d}_lr",
                "filename_hr": f"records500/{folder}/{ecg_id:05d}_hr",
            }
        )
    pd.DataFrame.from_records(records).to_csv(
        root / "ptbxl_database.csv", index=False, lineterminator="\n"
    )
    (root / "scp_statements.csv").write_text(SCP_STATEMENTS_CSV, encoding="utf-8")
    return root


def _digital(signal: np.ndarray) -> np.ndarray:
    """ADC units (int16) as wfdb.wrsamp computes them; I and II are quantised before deriving
    III, aVR, aVL, aVF, so the limb-lead relations hold in the stored integers."""
    sig = signal.copy()
    sig[:, :2] = np.round(sig[:, :2] * _ADC_GAIN) / _ADC_GAIN
    _derive_limb(sig)
    sig = np.clip(sig, -32.0, 32.0)
    return np.round(sig * _ADC_GAIN + 0).astype(np.int16)


def _write_record(out_dir: Path, name: str, signal: np.ndarray, fs: int) -> None:
    """Write a WFDB record byte for byte as ``wfdb.wrsamp(name, fs, ["mV"] * 12, LEADS,
    p_signal=signal, fmt=["16"] * 12, adc_gain=[1000.0] * 12, baseline=[0] * 12)`` would.

    wrsamp itself spends ~40 ms per record validating its header fields, too slow for a
    data set written in seconds; tests check the files are identical to wrsamp's.
    """
    d = _digital(signal)
    checksums = d.astype(np.int64).sum(axis=0) % 65536
    lines = [f"{name} {len(LEADS)} {fs} {d.shape[0]}"]
    for ch, lead in enumerate(LEADS):
        lines.append(
            f"{name}.dat 16 {_ADC_GAIN}(0)/mV 16 0 {int(d[0, ch])} {int(checksums[ch])} 0 {lead}"
        )
    (out_dir / f"{name}.hea").write_text("\n".join(lines) + "\n", encoding="ascii")
    (out_dir / f"{name}.dat").write_bytes(d.astype("<i2").tobytes())
