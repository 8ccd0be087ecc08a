"""Device exports: DICOM 12-lead ECG waveforms, HL7 aECG and GE MUSE XML, written as devices do."""

import base64
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from ecgcnn import Predictor
from ecgcnn.errors import RecordError
from ecgcnn.recording import find_recordings, read_recording
from ecgcnn.records import LEADS
from ecgcnn.synthetic import synthesize_ecg
from test_serve import wait_ready

FS = 500
# One 5 µV step of 16-bit storage is at most 2.5 µV off; 0.01 mV leaves room for derived leads.
QUANTUM_MV = 0.01
# DICOM CID 3001 (ECG leads): SCP-ECG code value and code meaning, in the order devices store them.
DICOM_LEADS = {
    "I": ("5.6.3-9-1", "Lead I (Einthoven)"),
    "II": ("5.6.3-9-2", "Lead II"),
    "III": ("5.6.3-9-61", "Lead III"),
    "AVR": ("5.6.3-9-62", "Lead aVR"),
    "AVL": ("5.6.3-9-63", "Lead aVL"),
    "AVF": ("5.6.3-9-64", "Lead aVF"),
    **{f"V{k}": (f"5.6.3-9-{k + 2}", f"Lead V{k}") for k in range(1, 7)},
}
MUSE_LEADS = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")


def ecg(seconds=10.0, seed=0):
    return synthesize_ecg(["NORM"], fs=FS, duration_s=seconds, rng=np.random.default_rng(seed))


# --- writers: files structured as the devices write them -------------------------------------------


def _dicom_group(signal_mv, label, leads, uv_per_bit, baseline_uv, meanings=True):
    from pydicom.dataset import Dataset

    group = Dataset()
    group.WaveformOriginality = "ORIGINAL"
    group.NumberOfWaveformChannels = len(leads)
    group.NumberOfWaveformSamples = signal_mv.shape[0]
    group.SamplingFrequency = FS
    group.MultiplexGroupLabel = label
    channels = []
    for lead in leads:
        code, meaning = DICOM_LEADS[lead]
        source = Dataset()
        source.CodeValue, source.CodingSchemeDesignator = code, "SCPECG"
        source.CodingSchemeVersion = "1.3"
        if meanings:
            source.CodeMeaning = meaning
        unit = Dataset()
        unit.CodeValue, unit.CodingSchemeDesignator, unit.CodeMeaning = "uV", "UCUM", "microvolt"
        channel = Dataset()
        channel.ChannelSourceSequence = [source]
        channel.ChannelSensitivity = uv_per_bit
        channel.ChannelSensitivityUnitsSequence = [unit]
        channel.ChannelSensitivityCorrectionFactor = 1
        channel.ChannelBaseline = baseline_uv
        channel.ChannelSampleSkew = 0
        channel.WaveformBitsStored = 16
        channels.append(channel)
    group.ChannelDefinitionSequence = channels
    group.WaveformBitsAllocated = 16
    group.WaveformSampleInterpretation = "SS"
    # physical = digital * sensitivity + baseline (PS3.3 C.10.9.1.4.3); samples interleaved C1S1,C2S1..
    columns = [LEADS.index(lead) for lead in leads]
    digital = np.round((signal_mv[:, columns] * 1000 - baseline_uv) / uv_per_bit)
    group.WaveformData = digital.astype("<i2").tobytes()
    return group


def write_dicom(path, signal_mv, leads=LEADS, uv_per_bit=5.0, baseline_uv=0.0, meanings=True):
    """A 12-Lead ECG Waveform Storage file: a 1.2 s median group first, then the rhythm group."""
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.9.1.1"
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientName, ds.PatientID = "ECG", "Test^Synthetic", "0"
    median = _dicom_group(
        signal_mv[: int(1.2 * FS)] * 0.5, "MEDIAN", leads, uv_per_bit, baseline_uv
    )
    rhythm = _dicom_group(signal_mv, "RHYTHM", leads, uv_per_bit, baseline_uv, meanings)
    ds.WaveformSequence = [median, rhythm]
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
    return path


def aecg_lead(lead, values_mv, uv_per_bit, origin_uv=0.0):
    """One lead of an aECG sequenceSet: physical = origin + scale * digit, in microvolts."""
    digits = np.round((values_mv * 1000 - origin_uv) / uv_per_bit).astype(int)
    return f"""<component><sequence>
      <code code="MDC_ECG_LEAD_{lead}" codeSystem="2.16.840.1.113883.6.24"/>
      <value xsi:type="SLIST_PQ"><origin value="{origin_uv:g}" unit="uV"/>
        <scale value="{uv_per_bit:g}" unit="uV"/>
        <digits>{" ".join(map(str, digits))}</digits></value>
    </sequence></component>"""


def write_aecg(path, signal_mv, uv_per_bit=5.0, increment="0.002", unit="s", origin_uv=0.0):
    """An FDA HL7 aECG: a RHYTHM series with a time sequence and one SLIST_PQ per lead, and a
    derived representative-beat series inside it (which the reader must skip)."""

    def sequence_set(signal, with_time=True):
        parts = []
        if with_time:
            parts.append(f"""<component><sequence>
              <code code="TIME_ABSOLUTE" codeSystem="2.16.840.1.113883.5.4"/>
              <value xsi:type="GLIST_TS"><head value="20240102030405.000"/>
                <increment value="{increment}" unit="{unit}"/></value>
            </sequence></component>""")
        for j, lead in enumerate(LEADS):
            parts.append(aecg_lead(lead, signal[:, j], uv_per_bit, origin_uv))
        return "<sequenceSet>" + "".join(parts) + "</sequenceSet>"

    text = f"""<?xml version="1.0" encoding="UTF-8"?>
<AnnotatedECG xmlns="urn:hl7-org:v3" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <id root="61d1a24f-b47e-41aa-ae95-f8ac302f4eeb"/>
  <code code="93000" codeSystem="2.16.840.1.113883.6.12"/>
  <component><series>
    <id root="a"/>
    <code code="RHYTHM" codeSystem="2.16.840.1.113883.5.4"/>
    <component>{sequence_set(signal_mv)}</component>
    <derivation><derivedSeries>
      <code code="REPRESENTATIVE_BEAT" codeSystem="2.16.840.1.113883.5.4"/>
      <component>{sequence_set(signal_mv[:600] * 0.5)}</component>
    </derivedSeries></derivation>
  </series></component>
</AnnotatedECG>"""
    Path(path).write_text(text, encoding="utf-8")
    return path


def write_muse(path, signal_mv, leads=MUSE_LEADS, uv_per_bit=4.88):
    """A GE MUSE RestingECG export: a Median waveform, then the 8-lead Rhythm waveform."""

    def waveform(kind, signal):
        parts = [f"<Waveform><WaveformType>{kind}</WaveformType><WaveformStartTime>0"
                 f"</WaveformStartTime><NumberofLeads>{len(leads)}</NumberofLeads>"
                 "<SampleType>CONTINUOUS_SAMPLES</SampleType><SampleBase>500</SampleBase>"
                 "<SampleExponent>0</SampleExponent>"]  # fmt: skip
        for lead in leads:
            digital = np.round(signal[:, LEADS.index(lead)] * 1000 / uv_per_bit).astype("<i2")
            data = base64.encodebytes(digital.tobytes()).decode()  # MUSE wraps its base64 lines
            parts.append(f"""<LeadData>
<LeadByteCountTotal>{2 * len(digital)}</LeadByteCountTotal>
<LeadTimeOffset>0</LeadTimeOffset>
<LeadSampleCountTotal>{len(digital)}</LeadSampleCountTotal>
<LeadAmplitudeUnitsPerBit>{uv_per_bit:g}</LeadAmplitudeUnitsPerBit>
<LeadAmplitudeUnits>MICROVOLTS</LeadAmplitudeUnits>
<LeadHighLimit>32767</LeadHighLimit><LeadLowLimit>-32768</LeadLowLimit>
<LeadID>{lead}</LeadID>
<LeadOffsetFirstSample>0</LeadOffsetFirstSample><FirstSampleBaseline>0</FirstSampleBaseline>
<LeadSampleSize>2</LeadSampleSize><LeadOff>FALSE</LeadOff><BaselineSway>FALSE</BaselineSway>
<WaveFormData>{data}</WaveFormData>
</LeadData>""")
        return "".join(parts) + "</Waveform>"

    text = f"""<?xml version="1.0" encoding="ISO-8859-1"?>
<!DOCTYPE RestingECG SYSTEM "restecg.dtd">
<RestingECG>
<MuseInfo><MuseVersion>9.0.9.18167</MuseVersion></MuseInfo>
<PatientDemographics><PatientID>0</PatientID><PatientLastName>Synthétique</PatientLastName>
</PatientDemographics>
{waveform("Median", signal_mv[:600] * 0.5)}
{waveform("Rhythm", signal_mv)}
</RestingECG>"""
    Path(path).write_bytes(text.encode("iso-8859-1"))
    return path


# --- round trips -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["dicom", "aecg"])
def test_12_lead_exports_read_back_within_quantisation(kind, tmp_path):
    sig = ecg()
    if kind == "dicom":  # leads stored out of model order, with a baseline offset
        order = ("V1", "V2", "V3", "V4", "V5", "V6", "I", "II", "III", "AVR", "AVL", "AVF")
        path = write_dicom(tmp_path / "ecg.dcm", sig, leads=order, baseline_uv=-20.0)
    else:
        path = write_aecg(tmp_path / "ecg.xml", sig, origin_uv=15.0)
    rec = read_recording(path)
    assert rec.fs == FS and rec.leads == LEADS and rec.signal.shape == sig.shape
    assert np.abs(rec.signal - sig).max() < QUANTUM_MV
    assert rec.warnings == ()


def test_a_real_device_dicom_reads_as_a_12_lead_ecg(predictor):
    """pydicom's sample from a Mortara recorder (not written by us): 12 leads at 1000 Hz, a
    RHYTHM group of 10 s beside a MEDIAN BEAT group of 1.2 s. The rhythm is read, in millivolts
    (Einthoven's III = II - I holds to the device's rounding), and predicts."""
    from pydicom.data import get_testdata_file

    path = Path(get_testdata_file("waveform_ecg.dcm"))
    rec = read_recording(path)
    assert rec.fs == 1000 and rec.signal.shape == (10000, 12) and rec.warnings == ()
    lead = {name: rec.signal[:, k] for k, name in enumerate(LEADS)}
    assert np.abs(lead["III"] - (lead["II"] - lead["I"])).max() < 0.02
    spans = np.ptp(rec.signal, axis=0)
    assert (spans > 0.2).all() and (spans < 5).all()  # millivolts, not microvolts or volts
    out = predictor.predict_record(path)
    assert out.windows > 1 and set(out.probabilities) == set(predictor.classes)


def test_a_real_muse_export_reads_as_its_own_checksummed_samples(predictor):
    """A GE MUSE export from a MAC55 cart (tests/data/muse/NOTICE.md), not written by us: the
    8-lead Rhythm waveform at 500 Hz, 4.88 µV per bit, beside median beats. Each lead's decoded
    bytes match the file's own CRC32, the reader gives those samples in millivolts, the four limb
    leads the cart did not store are derived, and it predicts."""
    import base64
    import xml.etree.ElementTree as ET
    import zlib

    path = Path(__file__).parent / "data" / "muse" / "muse_ecg1.xml"
    rec = read_recording(path)
    assert rec.fs == 500 and rec.signal.shape == (5000, 12)
    assert len(rec.warnings) == 1 and "III, AVR, AVL, AVF derived from I and II" in rec.warnings[0]
    rhythm = next(w for w in ET.parse(path).getroot().iter("Waveform")
                  if w.findtext("WaveformType") == "Rhythm")  # fmt: skip
    stored = rhythm.findall("LeadData")
    assert len(stored) == 8
    for lead in stored:
        raw = base64.b64decode(lead.findtext("WaveFormData"))
        assert zlib.crc32(raw) == int(lead.findtext("LeadDataCRC32")), lead.findtext("LeadID")
        microvolts = np.frombuffer(raw, "<i2") * float(lead.findtext("LeadAmplitudeUnitsPerBit"))
        got = rec.signal[:, LEADS.index(lead.findtext("LeadID").upper())]
        np.testing.assert_allclose(got, microvolts / 1000, atol=1e-6)
    lead = {name: rec.signal[:, k].astype(np.float64) for k, name in enumerate(LEADS)}
    i, ii = lead["I"], lead["II"]
    derived = {"III": ii - i, "AVR": -(i + ii) / 2, "AVL": i - ii / 2, "AVF": ii - i / 2}
    for name, want in derived.items():
        np.testing.assert_allclose(lead[name], want, atol=1e-5, err_msg=name)
    spans = np.ptp(rec.signal, axis=0)
    assert (spans > 0.1).all() and (spans < 5).all()  # millivolts
    out = predictor.predict_record(path)
    assert out.windows > 1 and set(out.probabilities) == set(predictor.classes)


def test_dicom_leads_by_code_value_without_code_meaning(tmp_path):
    sig = ecg(seed=1)
    rec = read_recording(write_dicom(tmp_path / "ecg.dcm", sig, meanings=False))
    assert rec.leads == LEADS and np.abs(rec.signal - sig).max() < QUANTUM_MV


def test_dicom_found_by_its_preamble_whatever_its_name(tmp_path):
    sig = ecg(seed=2)
    path = write_dicom(tmp_path / "1.2.826.0.1.3680043.8.498.1", sig)  # archives name files by UID
    assert np.abs(read_recording(path).signal - sig).max() < QUANTUM_MV


def test_muse_8_leads_derive_the_limb_leads_with_a_warning(tmp_path):
    sig = ecg(seed=3)
    rec = read_recording(write_muse(tmp_path / "muse.xml", sig))
    assert rec.fs == FS and rec.leads == LEADS
    lead = {name: sig[:, LEADS.index(name)].astype(np.float64) for name in LEADS}
    i, ii = lead["I"], lead["II"]
    expected = {"III": ii - i, "AVR": -(i + ii) / 2, "AVL": i - ii / 2, "AVF": ii - i / 2}
    for name, want in expected.items():
        assert np.abs(rec.signal[:, LEADS.index(name)] - want).max() < QUANTUM_MV, name
    stored = [LEADS.index(name) for name in MUSE_LEADS]
    assert np.abs(rec.signal[:, stored] - sig[:, stored]).max() < QUANTUM_MV
    assert rec.warnings == ("lead(s) III, AVR, AVL, AVF derived from I and II",)


def test_file_rate_wins_over_fs_and_segments_are_cut(tmp_path):
    sig = ecg(seed=4)
    path = write_aecg(tmp_path / "ecg.xml", sig, increment="2", unit="ms")
    rec = read_recording(path, fs=250, segment=(2.0, 6.0))
    assert rec.fs == FS and rec.signal.shape[0] == 4 * FS
    assert np.abs(rec.signal - sig[2 * FS : 6 * FS]).max() < QUANTUM_MV
    assert rec.warnings == ("the file says 500 Hz: --fs 250 ignored",)


# --- prediction ------------------------------------------------------------------------------------


def probs(prediction):
    return np.array(list(prediction.probabilities.values()))


@pytest.fixture(scope="module")
def predictor(served_checkpoint):
    return Predictor.from_checkpoint(served_checkpoint)


@pytest.mark.slow
def test_exports_predict_like_the_original_array(predictor, tmp_path):
    sig = ecg(seed=5)
    want = probs(predictor.predict(sig, fs=FS))
    for path in (write_dicom(tmp_path / "a.dcm", sig), write_aecg(tmp_path / "b.xml", sig),
                 write_muse(tmp_path / "c.xml", sig)):  # fmt: skip
        got = probs(predictor.predict_record(path))
        assert np.abs(got - want).max() < 0.02, path.name


# --- bad input -------------------------------------------------------------------------------------


def one_line_error(path, match):
    with pytest.raises(RecordError, match=match) as info:
        read_recording(path)
    assert "\n" not in str(info.value) and str(info.value).startswith(str(path))
    return str(info.value)


def write_dicom_image(path):
    """A 4 x 4 CT slice: the kind of DICOM file that shares folders with ECGs in an archive."""
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.Rows, ds.Columns = "CT", 4, 4
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.PixelData = np.zeros((4, 4), "<i2").tobytes()
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
    return path


def test_a_dicom_image_is_not_an_ecg(tmp_path):
    path = write_dicom_image(tmp_path / "image.dcm")
    one_line_error(path, r"without waveforms \(CT Image Storage\)")


def test_directories_pass_over_dicom_images(tmp_path):
    """An archive folder mixes ECGs with image slices: only the waveforms are recordings (an
    image given by name is still refused with its reason, above)."""
    ecg_file = write_dicom(tmp_path / "1.2.840.1.1", ecg(seed=20))
    write_dicom_image(tmp_path / "1.2.840.1.2")
    write_dicom_image(tmp_path / "slice.dcm")
    found, errors = find_recordings([tmp_path])
    assert found == [ecg_file] and errors == []
    (tmp_path / "images").mkdir()
    write_dicom_image(tmp_path / "images" / "IM000001")
    _, errors = find_recordings([tmp_path / "images"])
    assert len(errors) == 1 and "no recordings" in str(errors[0])


def test_a_truncated_dicom_is_an_error(tmp_path):
    path = write_dicom(tmp_path / "ecg.dcm", ecg(seed=6))
    path.write_bytes(path.read_bytes()[:-5000])
    one_line_error(path, "DICOM")


def test_a_text_file_named_dcm_is_an_error(tmp_path):
    path = tmp_path / "notes.dcm"
    path.write_text("not a dicom file\n" * 20)
    one_line_error(path, "not a DICOM file")


def test_bad_xml_is_a_one_line_error(tmp_path):
    malformed = write_aecg(tmp_path / "cut.xml", ecg(seed=7))
    malformed.write_text(malformed.read_text()[:5000])
    one_line_error(malformed, "malformed XML")
    cardiosoft = tmp_path / "cardiosoft.xml"
    cardiosoft.write_text('<?xml version="1.0"?>\n<CardiologyXML><StripData/></CardiologyXML>')
    message = one_line_error(cardiosoft, "CardiologyXML.*not supported.*aECG.*MUSE.*Philips")
    assert "GE CardioSoft" in message
    philips = tmp_path / "philips.xml"
    philips.write_text('<?xml version="1.0"?>\n<restingecgdata><waveforms/></restingecgdata>')
    one_line_error(philips, "unreadable Philips XML file: no <documentinfo> element")
    no_rate = write_aecg(tmp_path / "norate.xml", ecg(seed=8))
    no_rate.write_text(no_rate.read_text().replace('<increment value="0.002" unit="s"/>', ""))
    one_line_error(no_rate, "increment")
    bomb = tmp_path / "bomb.xml"
    bomb.write_text('<?xml version="1.0"?>\n<!DOCTYPE RestingECG [<!ENTITY a "aaaaaaaaaa">'
                    '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>\n'
                    "<RestingECG><MuseInfo>&b;</MuseInfo></RestingECG>")  # fmt: skip
    one_line_error(bomb, "entities")


def test_oversized_files_are_refused_unread(tmp_path, monkeypatch):
    import ecgcnn.waveforms

    monkeypatch.setattr(ecgcnn.waveforms, "MAX_FILE_BYTES", 1000)
    one_line_error(write_muse(tmp_path / "big.xml", ecg(seed=9)), "larger than any ECG export")


def test_directories_yield_ecg_exports_not_other_xml(tmp_path):
    sig = ecg(seed=10)
    (tmp_path / "sub").mkdir()
    files = [write_dicom(tmp_path / "a.dcm", sig), write_aecg(tmp_path / "sub" / "b.xml", sig),
             write_muse(tmp_path / "c.xml", sig)]  # fmt: skip
    (tmp_path / "pom.xml").write_text('<?xml version="1.0"?>\n<!-- build -->\n<project/>')
    found, errors = find_recordings([tmp_path])
    assert sorted(found) == sorted(files) and errors == []
    (tmp_path / "only").mkdir()
    (tmp_path / "only" / "settings.xml").write_text("<settings/>")
    _, errors = find_recordings([tmp_path / "only"])
    assert len(errors) == 1 and "no recordings" in str(errors[0])


# --- serve -----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_dicom_and_xml_uploads_predict(served_checkpoint, predictor, tmp_path):
    from ecgcnn.serve import MiB, Settings, create_app

    sig = ecg(seed=11)
    app = create_app(Settings(str(served_checkpoint), max_body_bytes=4 * MiB))
    with TestClient(app, raise_server_exceptions=False) as client:
        wait_ready(client)
        for path in (
            write_dicom(tmp_path / "ecg.dcm", sig),
            write_muse(tmp_path / "muse.xml", sig),
        ):
            r = client.post("/v1/predict", files=[("files", (path.name, path.read_bytes()))])
            assert r.status_code == 200, r.text
            want = predictor.predict_record(path).probabilities
            assert r.json()["probabilities"] == pytest.approx(want, abs=1e-6)
        bad = tmp_path / "pom.xml"
        bad.write_text("<project/>")
        r = client.post("/v1/predict", files=[("files", (bad.name, bad.read_bytes()))])
        assert r.status_code == 422 and "not supported" in r.json()["error"]["message"]


# --- found by a black-box probe ---------------------------------------------------------------------


def test_directories_find_dicom_files_by_content_whatever_their_name(tmp_path):
    """DICOM media name files IM000001 or by UID (1.2.840....1): found by their preamble; .dicom
    and .Dcm by suffix; other files (a WFDB .dat, notes.1) are not sniffed into the list."""
    sig = ecg(seed=12)
    dicoms = [write_dicom(tmp_path / name, sig)
              for name in ("x.dicom", "Mixed.Dcm", "IM000001", "1.2.840.113619.2.1.1")]  # fmt: skip
    (tmp_path / "notes.1").write_text("not an ECG")
    (tmp_path / "README").write_text("not an ECG either")
    found, errors = find_recordings([tmp_path])
    assert sorted(found) == sorted(dicoms) and errors == []


def write_aecg_in_sets(path, signal_mv, heads, uv_per_bit=5.0):
    """An aECG whose 12 leads come in four sequenceSets of three, each with its own time sequence
    starting at ``heads[k]`` (the same head: recorded together; different: one after another)."""
    sets = []
    for k, head in enumerate(heads):
        parts = [
            f"""<component><sequence><code code="TIME_ABSOLUTE" codeSystem="2.16.840.1.113883.5.4"/>
            <value xsi:type="GLIST_TS"><head value="{head}"/><increment value="0.002" unit="s"/>
            </value></sequence></component>"""
        ]
        for j in range(3 * k, 3 * k + 3):
            parts.append(aecg_lead(LEADS[j], signal_mv[:, j], uv_per_bit))
        sets.append("<component><sequenceSet>" + "".join(parts) + "</sequenceSet></component>")
    Path(path).write_text(f"""<?xml version="1.0" encoding="UTF-8"?>
<AnnotatedECG xmlns="urn:hl7-org:v3" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <component><series><code code="RHYTHM" codeSystem="2.16.840.1.113883.5.4"/>
    {"".join(sets)}
  </series></component>
</AnnotatedECG>""")
    return path


def test_aecg_leads_in_several_simultaneous_sequence_sets_are_gathered(tmp_path):
    sig = ecg(seed=13)
    path = write_aecg_in_sets(tmp_path / "sets.xml", sig, ["20240102030405.000"] * 4)
    rec = read_recording(path)
    assert rec.fs == FS and np.abs(rec.signal - sig).max() < QUANTUM_MV


def test_aecg_sequence_sets_recorded_one_after_another_are_an_error(tmp_path):
    """Leads recorded three at a time (old 3-channel carts) are not a simultaneous 12-lead ECG."""
    heads = [f"20240102030{k}05.000" for k in range(4)]
    path = write_aecg_in_sets(tmp_path / "sequential.xml", ecg(seed=14), heads)
    one_line_error(path, "not recorded together")


def test_muse_sample_size_that_is_not_a_number_is_a_record_error(tmp_path):
    path = write_muse(tmp_path / "m.xml", ecg(seed=15))
    text = path.read_bytes().replace(b"<LeadSampleSize>2<", b"<LeadSampleSize>two<")
    path.write_bytes(text)
    one_line_error(path, "LeadSampleSize")


@pytest.mark.slow
def test_a_batch_upload_of_two_formats_with_one_stem_is_two_records(served_checkpoint, tmp_path):
    from ecgcnn.serve import MiB, Settings, create_app

    sig = ecg(seed=16)
    files = [write_dicom(tmp_path / "a.dcm", sig), write_muse(tmp_path / "a.xml", sig)]
    app = create_app(Settings(str(served_checkpoint), max_body_bytes=4 * MiB))
    with TestClient(app, raise_server_exceptions=False) as client:
        wait_ready(client)
        upload = [("files", (f.name, f.read_bytes())) for f in files]
        r = client.post("/v1/predict/batch", files=upload)
        assert r.status_code == 200, r.text
        results = r.json()["results"]
        assert sorted(x["record"] for x in results) == ["a.dcm", "a.xml"]  # told apart
        one = [("files", ("ecg.xml", files[1].read_bytes()))]
        r = client.post("/v1/predict", files=one)  # a stem of its own: reported as before
        assert r.status_code == 200 and r.json()["record"] == "ecg", r.text
        r = client.post("/v1/predict", files=upload)  # one record expected: say so, drop nothing
        assert r.status_code == 422, r.text


def test_muse_without_waveform_types_reads_the_longest_untyped_waveform(tmp_path):
    """Some MUSE-style exports leave out WaveformType: then the longest untyped waveform is the
    rhythm (a median beat is 1.2 s), never one typed Median."""
    sig = ecg(seed=17)
    original = write_muse(tmp_path / "m.xml", sig).read_bytes()
    untyped = tmp_path / "untyped.xml"
    untyped.write_bytes(original.replace(b"<WaveformType>Median</WaveformType>", b"")
                        .replace(b"<WaveformType>Rhythm</WaveformType>", b""))  # fmt: skip
    beside_median = tmp_path / "beside-median.xml"
    beside_median.write_bytes(original.replace(b"<WaveformType>Rhythm</WaveformType>", b""))
    for path in (untyped, beside_median):
        rec = read_recording(path)
        assert rec.signal.shape == sig.shape and np.abs(rec.signal - sig).max() < QUANTUM_MV
    median_only = tmp_path / "median-only.xml"
    median_only.write_bytes(original.replace(b"<WaveformType>Rhythm</WaveformType>",
                                             b"<WaveformType>Median</WaveformType>"))  # fmt: skip
    one_line_error(median_only, "no Rhythm waveform")


@pytest.mark.parametrize(
    "change, match",
    [
        ((b"<SampleExponent>0<", b"<SampleExponent>400<"), "SampleBase"),
        ((b"<SampleBase>500<", b"<SampleBase>1e308<"), "not an ECG rate"),
        ((b'encoding="ISO-8859-1"', b'encoding="x-bogus"'), "encoding"),
    ],
)
def test_absurd_numbers_and_encodings_are_record_errors(tmp_path, change, match):
    """Found by review: overflowing rates and an unknown encoding escaped as OverflowError and
    LookupError (a 500 from serve) instead of a one-line record error."""
    path = write_muse(tmp_path / "m.xml", ecg(seed=18))
    path.write_bytes(path.read_bytes().replace(*change))
    one_line_error(path, match)


@pytest.mark.parametrize("increment, unit", [("1e-310", "s"), ("1e-320", "us")])
def test_an_absurd_aecg_time_increment_is_a_record_error(tmp_path, increment, unit):
    path = write_aecg(tmp_path / "a.xml", ecg(seed=19), increment=increment, unit=unit)
    one_line_error(path, "time increment")


def test_a_named_pipe_is_not_opened_to_sniff_for_dicom(tmp_path):
    import os

    fifo = tmp_path / "IM000002"
    os.mkfifo(fifo)  # opening it to read would block until a writer comes
    with pytest.raises(RecordError, match="unsupported file type"):
        read_recording(fifo)
    found, _ = find_recordings([tmp_path])
    assert found == []


def test_a_real_device_dicom_is_explained_with_the_probability_predict_gives(
    served_checkpoint, predictor, tmp_path
):
    from pydicom.data import get_testdata_file

    from ecgcnn.explain import explain_record

    path = Path(get_testdata_file("waveform_ecg.dcm"))
    predicted = predictor.predict_record(path).probabilities
    results = explain_record(served_checkpoint, tmp_path / "out", record=path, top=2)
    assert len(results) == 2
    for r in results:  # the first 10 s resampled from 1000 Hz, scored as predict scores it
        assert r.probability == pytest.approx(predicted[r.class_name], abs=1e-4)
        assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in r.paths)


@pytest.mark.slow
def test_a_dicom_upload_named_by_its_uid_predicts(served_checkpoint, predictor, tmp_path):
    """Archives name DICOM files by UID (1.2.840...) or IM000001: accepted by content, as
    predict accepts them; a suffixless file that is not DICOM is refused with the reason."""
    from ecgcnn.serve import MiB, Settings, create_app

    path = write_dicom(tmp_path / "1.2.840.113619.2.1.1", ecg(seed=21))
    app = create_app(Settings(str(served_checkpoint), max_body_bytes=4 * MiB))
    with TestClient(app, raise_server_exceptions=False) as client:
        wait_ready(client)
        for name in (path.name, "IM000001"):
            r = client.post("/v1/predict", files=[("files", (name, path.read_bytes()))])
            assert r.status_code == 200, r.text
            assert r.json()["record"] == name
            want = predictor.predict_record(path).probabilities
            assert r.json()["probabilities"] == pytest.approx(want, abs=1e-6)
        r = client.post("/v1/predict", files=[("files", ("NOTES", b"just text"))])
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_file"
        assert "or a DICOM file named by its UID" in r.json()["error"]["message"]
