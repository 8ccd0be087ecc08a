"""Device exports: DICOM 12-lead ECG waveforms, HL7 aECG XML, GE MUSE XML, Philips PageWriter XML,
Mortara ELI XML and SCP-ECG files.

DICOM, aECG and MUSE are read here; Philips XML (XLI-compressed or not), Mortara XML and SCP-ECG
(EN 1064: Huffman-coded, difference-encoded, reference beats subtracted) are decoded by ecgdatakit,
a library made for these formats, and only turned into this module's shape here.

Each reader returns what :func:`ecgcnn.recording.read_recording` needs from any file: the signal
(samples, channels) in the file's units, the sampling rate, the channel names and their units.
Every problem is a one-line :class:`~ecgcnn.errors.RecordError` naming the file.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import struct
import tempfile
import threading
import warnings
from pathlib import Path

import numpy as np

from ecgcnn.errors import RecordError
from ecgcnn.records import unit_scale

DICOM_SUFFIXES = (".dcm", ".dicom")
XML_SUFFIXES = (".xml",)
SCP_SUFFIXES = (".scp",)
# Waveform Storage SOP classes (PS3.4 B.5): 12-lead, general and ambulatory ECG, hemodynamic...
WAVEFORM_SOP_CLASSES = "1.2.840.10008.5.1.4.1.1.9."
# Exports are a few MB (10 s x 12 leads at 500 Hz is 2 MB as aECG text); a file this large is no
# resting ECG, and parsing XML takes several times its size in memory.
MAX_FILE_BYTES = 200 * 1024 * 1024
# The root element is within the first few KB (after the declaration, comments and a DOCTYPE).
SNIFF_BYTES = 8192
HL7_NS = "urn:hl7-org:v3"
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
# Root elements of the XML exports read here ...
XML_KINDS = {"AnnotatedECG": "HL7 aECG", "RestingECG": "GE MUSE", "restingecgdata": "Philips",
             "ECG": "Mortara ELI"}  # fmt: skip
# ... and of some that are not, so that the error can say what a file is.
OTHER_XML = {"CardiologyXML": "GE CardioSoft XML"}
SUPPORTED_XML = (
    "HL7 aECG <AnnotatedECG>, GE MUSE <RestingECG>, Philips PageWriter/Sierra <restingecgdata> "
    "or Mortara ELI <ECG>"
)
# Lead codes shared by SCP-ECG and the ISO/IEEE 11073 MDC nomenclature (DICOM CID 3001 gives them
# as SCPECG '5.6.3-9-1' or MDC '2:1'), for channels that carry a code but no code meaning.
LEAD_CODES = {1: "I", 2: "II", 3: "V1", 4: "V2", 5: "V3", 6: "V4", 7: "V5", 8: "V6",
              61: "III", 62: "AVR", 63: "AVL", 64: "AVF"}  # fmt: skip


def file_head(path: Path, size: int) -> bytes | None:
    """A regular file's first ``size`` bytes, to tell its kind (None: no such file, unreadable, or
    not a regular file: a named pipe would block the read)."""
    try:
        if not path.is_file():
            return None
        with open(path, "rb") as f:
            return f.read(size)
    except OSError:
        return None


def is_dicom(path: Path) -> bool:
    """Whether a file starts with the DICOM preamble: 128 bytes, then 'DICM'."""
    head = file_head(path, 132)
    return head is not None and has_dicom_preamble(head)


def has_dicom_preamble(head: bytes) -> bool:
    """Whether the first 132 bytes of a file are a DICOM preamble: 128 bytes, then 'DICM'."""
    return len(head) == 132 and head[128:] == b"DICM"


def is_waveform_dicom(path: Path) -> bool:
    """Whether a DICOM file holds waveforms (ECG, hemodynamic...), by its SOP class alone, so
    that an image slice beside the ECGs in an archive folder is passed over without being read.
    A file whose class cannot be read counts as one: its reader then says what is wrong."""
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID"])
        sop = str(ds.get("SOPClassUID") or ds.file_meta.get("MediaStorageSOPClassUID") or "")
    except Exception:
        return True
    return not sop or sop.startswith(WAVEFORM_SOP_CLASSES)


def xml_root(path: Path) -> str | None:
    """The local name of an XML file's root element, from its first few KB (None: none found)."""
    head = file_head(path, SNIFF_BYTES)
    if head is None:
        return None
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = head.decode("utf-16", errors="ignore")
    elif head.startswith((b"<\0", b"\0<")):  # UTF-16 without a byte order mark
        text = head.decode("utf-16-le" if head[0] else "utf-16-be", errors="ignore")
    else:
        text = head.decode("latin-1")
    text = re.sub(r"<!--.*?(-->|$)", "", text, flags=re.S)
    match = re.search(r"<(?![?!])([^\s>/]+)", text)
    return match.group(1).split(":")[-1] if match else None


def is_ecg_xml(path: Path) -> bool:
    """Whether an XML file is an export read here (judged by its root element only)."""
    return xml_root(path) in XML_KINDS


def _read_bytes(path: Path, name: str) -> bytes:
    _check_size(path, name)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise RecordError(name, "file not found") from None
    except OSError as exc:
        raise RecordError(name, f"unreadable file ({exc.strerror or exc})") from None


def _check_size(path: Path, name: str) -> None:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise RecordError(name, "file not found") from None
    except OSError as exc:
        raise RecordError(name, f"unreadable file ({exc.strerror or exc})") from None
    if size > MAX_FILE_BYTES:
        raise RecordError(
            name,
            f"file of {size / 2**20:.0f} MiB: larger than any ECG export "
            f"(at most {MAX_FILE_BYTES // 2**20} MiB read)",
        )


def _rate(rate: float, what: str, name: str) -> float:
    """A sampling rate from a file's numbers, if it is one: 1 / 0.002 s is 500 Hz, not
    499.99999999999994; an overflow or a zero is a record error, not an exception."""
    if not math.isfinite(rate) or rate <= 0:
        raise RecordError(name, f"{what}: no usable sampling rate ({rate:g} Hz)")
    return float(round(rate)) if abs(rate - round(rate)) < 1e-6 * rate else rate


# --- DICOM ---------------------------------------------------------------------------------------


def read_dicom(path: Path, name: str) -> tuple[np.ndarray, float, list[str], list[str]]:
    """The rhythm multiplex group of a DICOM waveform: signal, rate, lead names, units.

    The group labelled RHYTHM, else the longest with at least 8 channels. pydicom applies each
    channel's sensitivity, its correction factor and its baseline (in physical units).
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    _check_size(path, name)
    try:  # waveforms precede pixel data: an image (a CT slice in the folder) is not read whole
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        groups = list(ds.get("WaveformSequence") or [])
    except InvalidDicomError:
        raise RecordError(
            name, "not a DICOM file (no 'DICM' after the 128-byte preamble)"
        ) from None
    except Exception as exc:  # pydicom raises many types on a damaged file
        raise RecordError(name, f"unreadable DICOM file ({type(exc).__name__}: {exc})") from None
    if not groups and "SOPClassUID" not in ds:
        raise RecordError(
            name, "DICOM file holds no complete dataset (no SOP Class UID): truncated?"
        )
    if not groups:
        sop = ds.get("SOPClassUID")
        what = getattr(sop, "name", None) or sop or "no SOP class"
        raise RecordError(
            name, f"a DICOM file without waveforms ({what}): expected a 12-lead ECG waveform"
        )
    try:
        index = _rhythm_group(groups, name)
        group = groups[index]
        n_ch, n_samples = int(group.NumberOfWaveformChannels), int(group.NumberOfWaveformSamples)
        bits, kind = int(group.WaveformBitsAllocated), str(group.WaveformSampleInterpretation)
        rate = float(group.SamplingFrequency)
        channels = list(group.ChannelDefinitionSequence)
        data = group.WaveformData
    except (AttributeError, TypeError, ValueError) as exc:
        raise RecordError(name, f"incomplete DICOM waveform ({exc})") from None
    if kind in ("MB", "AB"):
        raise RecordError(name, f"{kind}-law companded DICOM waveform samples are not supported")
    if len(channels) != n_ch:
        raise RecordError(
            name, f"DICOM waveform has {n_ch} channels but {len(channels)} channel definitions"
        )
    need = n_ch * n_samples * bits // 8
    if len(data) < need:
        raise RecordError(
            name, f"DICOM waveform data has {len(data)} bytes, its header needs {need} (truncated?)"
        )
    if any("ChannelSensitivity" not in ch for ch in channels):
        raise RecordError(name, "a DICOM waveform channel has no ChannelSensitivity: units unknown")
    try:
        signal = ds.waveform_array(index)
    except Exception as exc:
        raise RecordError(
            name, f"unreadable DICOM waveform ({type(exc).__name__}: {exc})"
        ) from None
    names = [_dicom_lead(ch, k) for k, ch in enumerate(channels)]
    units = [_dicom_units(ch) for ch in channels]
    return signal, rate, names, units


def _rhythm_group(groups: list, name: str) -> int:
    labels = [str(g.get("MultiplexGroupLabel", "")).strip().upper() for g in groups]
    if "RHYTHM" in labels:
        return labels.index("RHYTHM")
    wide = [(int(g.get("NumberOfWaveformSamples", 0) or 0), -i)
            for i, g in enumerate(groups) if int(g.get("NumberOfWaveformChannels", 0) or 0) >= 8]  # fmt: skip
    if not wide:
        counts = ", ".join(str(g.get("NumberOfWaveformChannels", "?")) for g in groups)
        raise RecordError(
            name,
            f"no DICOM waveform group of 8 or more ECG channels (channels per group: {counts})",
        )
    return -max(wide)[1]


def _dicom_lead(channel: object, k: int) -> str:
    """A channel's lead: its source's code meaning ('Lead I (Einthoven)'), else its code value."""
    from ecgcnn.recording import canonical_lead

    source = (getattr(channel, "ChannelSourceSequence", None) or [None])[0]
    if source is None:
        return f"channel {k + 1}"
    meaning = str(source.get("CodeMeaning", "") or "").strip()
    if meaning and canonical_lead(meaning):
        return meaning
    code = re.fullmatch(r"(?:5\.6\.3-9-|2:)(\d+)", str(source.get("CodeValue", "")).strip())
    if code and int(code.group(1)) in LEAD_CODES:
        return LEAD_CODES[int(code.group(1))]
    return meaning or str(source.get("CodeValue", "")) or f"channel {k + 1}"


def _dicom_units(channel: object) -> str:
    units = (getattr(channel, "ChannelSensitivityUnitsSequence", None) or [None])[0]
    if units is None:
        return "?"
    for key in ("CodeValue", "CodeMeaning"):
        value = str(units.get(key, "") or "").strip()
        if unit_scale(value) is not None:
            return value
    return str(units.get("CodeValue", "?"))


# --- XML -----------------------------------------------------------------------------------------


def read_xml(
    path: Path, name: str, warn: list[str] | None = None
) -> tuple[np.ndarray, float, list[str], list[str]]:
    """An HL7 aECG, GE MUSE or Philips XML export, told apart by its root element.

    ``warn`` collects what the reader did that the user should know (a cut calibration pulse).
    """
    from xml.etree.ElementTree import ParseError

    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import fromstring

    raw = _read_bytes(path, name)
    try:
        # A DOCTYPE naming an external DTD is allowed (MUSE exports declare 'restecg.dtd'; it is
        # never fetched); entity declarations, which can expand a small file into gigabytes, are not.
        safe = {"forbid_dtd": False, "forbid_entities": True, "forbid_external": True}
        text = None
        try:
            root = fromstring(raw, **safe)
        except ValueError:  # expat reads no multi-byte encoding but UTF-16 with a BOM: decode here
            text = _xml_text(raw, name)
            root = fromstring(text, **safe)
    except DefusedXmlException as exc:
        what = f"entity {exc.name!r}" if getattr(exc, "name", None) else type(exc).__name__
        raise RecordError(
            name, f"XML refused: it declares entities ({what}), which are not read, for safety"
        ) from None
    except ParseError as exc:
        raise RecordError(name, f"malformed XML ({exc})") from None
    except LookupError as exc:  # an encoding Python does not know
        raise RecordError(name, f"malformed XML (its declared encoding: {exc})") from None
    tag = root.tag.split("}")[-1]
    if tag == "restingecgdata":
        if text is None:
            return _read_philips(path, root, name, [] if warn is None else warn)
        # ecgdatakit's XML parser has the same limit: it gets a UTF-8 copy
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / path.name
            copy.write_bytes(b'<?xml version="1.0" encoding="UTF-8"?>\n' + text.encode("utf-8"))
            return _read_philips(copy, root, name, [] if warn is None else warn)
    if tag == "ECG":
        return _read_mortara(path, name, [] if warn is None else warn)
    reader = {"AnnotatedECG": _read_aecg, "RestingECG": _read_muse}.get(tag)
    if reader is not None:
        try:
            return reader(root, name)
        except RecordError:
            raise
        except Exception as exc:  # whatever else a file from the wild finds: one line, not a 500
            kind = XML_KINDS[tag]
            raise RecordError(
                name, f"unreadable {kind} XML ({type(exc).__name__}: {exc})"
            ) from None
    what = f" ({OTHER_XML[tag]})" if tag in OTHER_XML else ""
    raise RecordError(name, f"XML of kind <{tag}>{what} is not supported; expected {SUPPORTED_XML}")


def _xml_text(raw: bytes, name: str) -> str:
    """An XML file's text without its declaration, decoded in the encoding it declares (UTF-16
    without a byte order mark, Shift_JIS...), for a parser that only reads single-byte ones."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        encoding = "utf-16"
    elif raw.startswith((b"<\0", b"\0<")):
        encoding = "utf-16-le" if raw[0] else "utf-16-be"
    else:
        declared = re.match(rb"\s*<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9._-]+)", raw[:512])
        encoding = declared.group(1).decode() if declared else "utf-8"
    try:
        text = raw.decode(encoding)
    except (LookupError, UnicodeDecodeError) as exc:
        raise RecordError(name, f"malformed XML (not {encoding} as it declares: {exc})") from None
    return re.sub(r"^\ufeff?\s*<\?xml[^>]*\?>", "", text)


def _attr_float(element: object, attr: str, what: str, name: str) -> float:
    value = None if element is None else element.get(attr)  # type: ignore[attr-defined]
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise RecordError(name, f"aECG {what}: expected a number, got {value!r}") from None


def _read_aecg(root: object, name: str) -> tuple[np.ndarray, float, list[str], list[str]]:
    """The rhythm series of an HL7 aECG: physical = origin + scale * digit, per lead.

    Only series directly under the document are considered: representative (median) beats are
    derived series nested inside a rhythm series and are skipped.
    """
    ns = {"h": HL7_NS}
    series = root.findall("h:component/h:series", ns)  # type: ignore[attr-defined]
    codes = [s.find("h:code", ns) for s in series]
    codes = [None if c is None else c.get("code") for c in codes]
    if "RHYTHM" not in codes:
        found = ", ".join(str(c) for c in codes) or "none"
        raise RecordError(name, f"aECG has no RHYTHM series (series codes: {found})")
    rhythm = series[codes.index("RHYTHM")]
    sets = rhythm.findall("h:component/h:sequenceSet", ns)
    if not sets:
        raise RecordError(name, "aECG rhythm series has no sequenceSet")
    # Devices may split the leads over several sequenceSets; they make one ECG only when they
    # were recorded together (3-channel carts record I-III, then aVR-aVF, ... one after another).
    parts = [_aecg_sequence_set(s, ns, name) for s in sets]
    heads = {head for head, *_ in parts if head is not None}
    if len(heads) > 1:
        raise RecordError(
            name,
            f"aECG rhythm sequenceSets start at different times ({', '.join(sorted(heads))}): "
            "leads not recorded together are not one 12-lead ECG",
        )
    rates = {rate for _, rate, *_ in parts if rate is not None}
    if not rates:
        raise RecordError(name, "aECG rhythm sequenceSet has no time sequence with an increment: "
                          "sampling rate unknown")  # fmt: skip
    if len(rates) > 1:
        raise RecordError(name, f"aECG rhythm sequenceSets differ in rate "
                          f"({', '.join(f'{r:g}' for r in sorted(rates))} Hz)")  # fmt: skip
    names = [n for part in parts for n in part[2]]
    units = [u for part in parts for u in part[3]]
    leads = [v for part in parts for v in part[4]]
    if not leads:
        raise RecordError(name, "aECG rhythm sequenceSet holds no lead sequences (SLIST_PQ)")
    return _stack(leads, "aECG", name), rates.pop(), names, units


def _aecg_sequence_set(
    sequence_set: object, ns: dict[str, str], name: str
) -> tuple[str | None, float | None, list[str], list[str], list[np.ndarray]]:
    """One sequenceSet: its start time (the time sequence's head), rate, lead names, units, leads."""
    head: str | None = None
    rate: float | None = None
    names: list[str] = []
    units: list[str] = []
    leads: list[np.ndarray] = []
    for seq in sequence_set.findall("h:component/h:sequence", ns):  # type: ignore[attr-defined]
        code_el = seq.find("h:code", ns)
        code = "" if code_el is None else str(code_el.get("code", ""))
        value = seq.find("h:value", ns)
        if value is None:
            raise RecordError(name, f"aECG sequence {code or '(no code)'} has no value")
        kind = str(value.get(XSI_TYPE, "")).split(":")[-1]
        if code.startswith("TIME_") or kind in ("GLIST_TS", "GLIST_PQ"):
            rate = _aecg_rate(value.find("h:increment", ns), name)
            head_el = value.find("h:head", ns)
            head = None if head_el is None else head_el.get("value")
            continue
        if kind != "SLIST_PQ":
            continue  # other sequence types (annotations, sample flags) carry no lead
        origin, scale = value.find("h:origin", ns), value.find("h:scale", ns)
        offset = _attr_float(origin, "value", f"{code} origin", name) if origin is not None else 0.0
        step = _attr_float(scale, "value", f"{code} scale", name)
        unit = str(scale.get("unit", "") or "")  # type: ignore[union-attr]
        if origin is not None and offset and origin.get("unit") not in (None, unit):
            to_mv, from_mv = unit_scale(origin.get("unit")), unit_scale(unit)
            if to_mv is None or from_mv is None:
                raise RecordError(name, f"aECG {code}: origin unit {origin.get('unit')!r} "
                                  f"differs from scale unit {unit!r}")  # fmt: skip
            offset = offset * to_mv / from_mv
        digits = value.find("h:digits", ns)
        try:
            values = np.array((digits.text or "").split(), dtype=np.float64)  # type: ignore[union-attr]
        except (AttributeError, ValueError):
            raise RecordError(
                name, f"aECG {code}: digits are not whitespace-separated integers"
            ) from None
        leads.append(offset + step * values)
        names.append(code.removeprefix("MDC_ECG_LEAD_"))
        units.append(unit or "?")
    return head, rate, names, units, leads


def _stack(leads: list[np.ndarray], kind: str, name: str) -> np.ndarray:
    """Leads of one length as (samples, leads); leads of different lengths are no one recording."""
    lengths = sorted({len(v) for v in leads})
    if len(lengths) > 1:
        raise RecordError(
            name, f"{kind} leads differ in length ({', '.join(map(str, lengths))} samples)"
        )
    return np.stack(leads, axis=1)


def _aecg_rate(increment: object, name: str) -> float:
    step = _attr_float(increment, "value", "time increment", name)
    unit = str(increment.get("unit", "s")).strip()  # type: ignore[union-attr]
    seconds = {"s": 1.0, "ms": 1e-3, "us": 1e-6}.get(unit)
    if seconds is None or step <= 0:
        raise RecordError(name, f"aECG time increment {step:g} {unit}: expected a positive s or ms")
    period = step * seconds
    return _rate(1.0 / period if period > 0 else math.inf, f"aECG time increment {step:g} {unit}",
                 name)  # fmt: skip


def _read_muse(root: object, name: str) -> tuple[np.ndarray, float, list[str], list[str]]:
    """The rhythm waveform of a GE MUSE export: base64 little-endian int16 per lead, scaled."""
    waves = root.findall("Waveform")  # type: ignore[attr-defined]
    kinds = [(w.findtext("WaveformType") or "").strip() for w in waves]
    rhythm = [w for w, k in zip(waves, kinds, strict=True) if k.lower() == "rhythm"]
    if not rhythm:  # exports that leave out WaveformType: the longest untyped one (not a median)
        untyped = [w for w, k in zip(waves, kinds, strict=True) if not k]
        rhythm = sorted(untyped, key=lambda w: -len(w.findtext("LeadData/WaveFormData") or ""))
    if not rhythm:
        found = ", ".join(k or "(untyped)" for k in kinds) or "none"
        raise RecordError(name, f"MUSE XML has no Rhythm waveform (waveforms: {found})")
    wave = rhythm[0]
    try:
        base = float(wave.findtext("SampleBase") or "nan")
        exponent = int(wave.findtext("SampleExponent") or 0)
    except ValueError:
        base, exponent = float("nan"), 0
    if not np.isfinite(base) or base <= 0:
        raise RecordError(
            name, f"MUSE SampleBase {wave.findtext('SampleBase')!r}: expected a rate in Hz"
        )
    try:
        rate = base * 10.0**exponent
    except OverflowError:
        rate = math.inf
    rate = _rate(rate, f"MUSE SampleBase {base:g} x 10^{exponent}", name)
    names: list[str] = []
    units: list[str] = []
    leads: list[np.ndarray] = []
    for lead in wave.findall("LeadData"):
        lead_id = (lead.findtext("LeadID") or "").strip()
        try:
            per_bit = float(lead.findtext("LeadAmplitudeUnitsPerBit") or "nan")
            data = base64.b64decode(lead.findtext("WaveFormData") or "")
        except (ValueError, binascii.Error):
            raise RecordError(
                name, f"MUSE lead {lead_id}: unreadable amplitude scale or WaveFormData"
            ) from None
        size = (lead.findtext("LeadSampleSize") or "2").strip()
        if size != "2" or len(data) % 2:
            raise RecordError(name, f"MUSE lead {lead_id}: expected 16-bit samples "
                              f"(LeadSampleSize 2), got {len(data)} bytes of LeadSampleSize "
                              f"{size!r}")  # fmt: skip
        count = lead.findtext("LeadSampleCountTotal")
        if count is not None and count.strip().isdigit() and int(count) * 2 != len(data):
            raise RecordError(name, f"MUSE lead {lead_id}: {len(data) // 2} samples, its "
                              f"LeadSampleCountTotal says {int(count)} (truncated?)")  # fmt: skip
        if not np.isfinite(per_bit):
            raise RecordError(name, f"MUSE lead {lead_id}: no LeadAmplitudeUnitsPerBit")
        leads.append(np.frombuffer(data, "<i2").astype(np.float64) * per_bit)
        names.append(lead_id)
        units.append((lead.findtext("LeadAmplitudeUnits") or "?").strip())
    if not leads:
        raise RecordError(name, "MUSE Rhythm waveform holds no LeadData")
    return _stack(leads, "MUSE", name), rate, names, units


# --- Philips XML and SCP-ECG, decoded by ecgdatakit ---------------------------------------------

# A resting ECG export holds seconds of signal. Compressed files (Huffman, XLI) could claim hours
# in a few KB and cost minutes and gigabytes to decode: more than this per lead, or in all, is
# refused before decoding.
MAX_EXPORT_S = 300.0
MAX_EXPORT_SAMPLES = 4_000_000
# An ECG has 12 to 18 leads and maybe a status channel; a file declaring more is refused before
# a lead object is built for each.
MAX_CHANNELS = 64
MAX_WARNINGS = 20  # of one decode: the rest are counted
# An XLI chunk decompresses to 2 bytes a sample (and a few bytes of padding); twice that is refused.
XLI_SLACK = 1024
# The limb leads of a 12-lead cart are computed from I and II; farther apart than this, the file's
# labels or data are not what the reader took them for.
EINTHOVEN_MV = 0.05
# ecgdatakit reports through the warnings module, whose catch_warnings swaps process-wide state:
# one decode at a time, so that serve's reader threads keep each file's warnings with that file.
_DECODE_LOCK = threading.Lock()

# A stretch this long at either end in which every lead holds the same value is no ECG (I = II = III
# would need III = II - I = 0): Philips carts end each lead in flat samples and a 1 mV calibration
# pulse in every lead. A shorter one (a sample that happens to be zero everywhere) is left alone.
CALIBRATION_MIN_S = 0.05


def is_scp(path: Path) -> bool:
    """Whether a file starts like an SCP-ECG record: a CRC, its size, then Section 0 pointing to
    itself at byte 7 (as ecgdatakit recognises one)."""
    from ecgdatakit.parsing.parsers.scp_ecg import SCPECGParser

    head = file_head(path, SNIFF_BYTES)
    return head is not None and SCPECGParser.can_parse(path, head)


def read_scp(
    path: Path, name: str, warn: list[str] | None = None
) -> tuple[np.ndarray, float, list[str], list[str]]:
    """The rhythm data (Section 6) of an SCP-ECG file: signal, rate, lead names, units.

    Carts usually store 8 leads (I, II, V1-V6); the other four are derived later, as for any
    8-lead export. Leads recorded one group after another (3-channel carts) are an error: a
    12-lead model needs them together.
    """
    from ecgdatakit.parsing.parsers.scp_ecg import SCPECGParser

    data = _read_bytes(path, name)  # size-checked
    if not SCPECGParser.can_parse(path, data[:SNIFF_BYTES]):
        raise RecordError(
            name, "not an SCP-ECG file (no Section 0 at its start, as EN 1064 lays one out)"
        )
    _check_scp_size(data, name)
    record = _decode_with(SCPECGParser, path, name, "SCP-ECG", [] if warn is None else warn)
    late = [(lead.label, lead.annotations["start_sample"]) for lead in record.leads
            if "start_sample" in lead.annotations]  # fmt: skip
    lengths = {len(lead.samples) for lead in record.leads}
    if late or len(lengths) > 1:
        what = f"lead {late[0][0]} starts at sample {late[0][1]}" if late else "unequal lengths"
        raise RecordError(name, f"SCP-ECG leads not recorded together ({what}): not a 12-lead ECG")
    signal, rate, leads, units = _physical_leads(record, name, "SCP-ECG")
    interval = record.raw_metadata.get("rhythm_sample_interval_us")
    if interval:  # ecgdatakit rounds the rate: 3,000 us a sample is 333.3 Hz, not 333
        rate = _rate(1e6 / interval, "SCP-ECG", name)
    return signal, rate, leads, units


def _read_philips(
    path: Path, root: object, name: str, warn: list[str]
) -> tuple[np.ndarray, float, list[str], list[str]]:
    """A Philips PageWriter/TraceMaster/Sierra ECG XML export (documents 1.03 to 1.04.02; samples
    XLI-compressed or not), without the calibration pulse the carts append; limb leads that do not
    follow from I and II are an error."""
    from ecgdatakit.parsing.parsers.sierra_xml import SierraXMLParser

    _check_philips_size(root, name)
    record = _decode_with(SierraXMLParser, path, name, "Philips XML", warn)
    signal, rate, names, units = _physical_leads(record, name, "Philips XML")
    signal = _cut_calibration(signal, rate, warn)
    _check_einthoven(signal, names, units, name, "Philips XML")
    return signal, rate, names, units


def _check_scp_size(data: bytes, name: str) -> None:
    """Refuse an SCP-ECG file whose lead definitions (Section 3) and sample interval (Section 6)
    declare more than an export holds, before anything is decoded. A file too damaged to tell is
    left to the decoder, which says what is wrong."""
    try:
        sections = {}
        end = 6 + struct.unpack_from("<I", data, 10)[0]
        for pos in range(22, min(end, len(data)) - 9, 10):
            sid, length, index = struct.unpack_from("<HII", data, pos)
            if index:
                sections[sid] = data[index - 1 + 16 : index - 1 + length]
        s3, s6 = sections[3], sections[6]
        leads = struct.iter_unpack("<IIB", s3[2 : 2 + 9 * s3[0]])
        counts = [last - first + 1 for first, last, _code in leads]
        interval_us = struct.unpack_from("<H", s6, 2)[0]
    except (struct.error, KeyError, IndexError):
        return
    seconds = max(counts, default=0) * interval_us / 1e6
    if seconds > MAX_EXPORT_S:
        raise RecordError(
            name, f"SCP-ECG declares {seconds:.3g} s per lead (at most {MAX_EXPORT_S:g} s read)"
        )
    if sum(counts) > MAX_EXPORT_SAMPLES:
        raise RecordError(
            name,
            f"SCP-ECG declares {sum(counts):,} samples in all (at most {MAX_EXPORT_SAMPLES:,} read)",
        )


def _check_philips_size(root: object, name: str) -> None:
    """Refuse a Philips export that declares more than an export holds, or whose XLI chunks would
    decompress to more than their leads need, before ecgdatakit decodes it in full."""
    parsed = _find_local(root, "parsedwaveforms")
    if parsed is None:
        return
    rate_text = parsed.get("samplespersecond")
    if not rate_text:  # 1.03 documents give it under signalcharacteristics
        sampling = _find_local(root, "samplingrate")
        rate_text = "" if sampling is None else sampling.text
    try:
        duration_s = float(parsed.get("durationperchannel", "")) / 1000
        rate = float(rate_text or "")
    except ValueError:
        return  # the decoder names the missing or bad attribute
    if not (math.isfinite(duration_s) and math.isfinite(rate)) or duration_s <= 0 or rate <= 0:
        return
    if duration_s > MAX_EXPORT_S:
        raise RecordError(
            name,
            f"Philips XML declares {duration_s:g} s per lead (at most {MAX_EXPORT_S:g} s read)",
        )
    method = (parsed.get("compressmethod") or parsed.get("compression") or "").upper()
    if method != "XLI" or parsed.get("compressflag", "").strip().lower() == "false":
        return
    try:
        blob = base64.b64decode("".join((parsed.text or "").split()), validate=True)
    except (binascii.Error, ValueError):
        return
    leads = len(parsed.get("leadlabels", "").split()) or 12
    cap = 2 * (2 * round(duration_s * rate)) + XLI_SLACK
    offset, chunk = 0, 0
    while offset + 8 <= len(blob):
        size = struct.unpack_from("<i", blob, offset)[0]
        chunk += 1
        if chunk > leads + 8:
            raise RecordError(
                name, f"Philips XML: more than {leads + 8} XLI chunks for {leads} leads"
            )
        if size <= 0:
            return
        if _lzw_output_exceeds(blob[offset + 8 : offset + 8 + size], cap):
            raise RecordError(
                name,
                f"Philips XML: XLI chunk {chunk} decompresses to more than {cap:,} bytes, "
                f"{duration_s:g} s at {rate:g} Hz needs {2 * round(duration_s * rate):,}",
            )
        offset += 8 + size


def _find_local(root: object, local: str) -> object | None:
    """The first element named ``local`` in any namespace (Philips exports declare one)."""
    return next((e for e in root.iter() if str(e.tag).split("}")[-1] == local), None)  # type: ignore[attr-defined]


def _lzw_output_exceeds(chunk: bytes, cap: int) -> bool:
    """Whether 10-bit LZW codes (most significant bit first, a table of codes up to 1022, as XLI
    uses) decode to more than ``cap`` bytes; only the lengths of the table's strings are kept."""
    bits = np.unpackbits(np.frombuffer(chunk, dtype=np.uint8))
    n = len(bits) // 10
    codes = bits[: n * 10].reshape(n, 10).astype(np.int64) @ (1 << np.arange(9, -1, -1))
    lengths = [1] * 256 + [0] * 767
    next_code, previous, total = 256, 0, 0
    for code in codes.tolist():
        if code > 1022:
            break
        length = lengths[code] if code < next_code else previous + 1
        if previous and next_code <= 1022:
            lengths[next_code] = previous + 1
            next_code += 1
        previous = length
        total += length
        if total > cap:
            return True
    return False


def _check_einthoven(
    signal: np.ndarray, names: list[str], units: list[str], name: str, kind: str
) -> None:
    """Refuse limb leads that do not follow from I and II (III = II - I, aVR = -(I + II)/2,
    aVL = I - II/2, aVF = II - I/2), as every 12-lead cart computes them."""
    index = {str(n).strip().upper(): k for k, n in enumerate(names)}
    if not {"I", "II"} <= set(index):
        return

    def mv(lead: str) -> np.ndarray:
        k = index[lead]
        return signal[:, k] * (unit_scale(units[k]) or 1.0)

    i, ii = mv("I"), mv("II")
    relations = {"III": ("III != II - I", ii - i), "AVR": ("aVR != -(I + II)/2", -(i + ii) / 2),
                 "AVL": ("aVL != I - II/2", i - ii / 2), "AVF": ("aVF != II - I/2", ii - i / 2)}  # fmt: skip
    errors = {text: mv(lead) - want for lead, (text, want) in relations.items() if lead in index}
    if not errors:
        return
    worst = max(errors, key=lambda k: float(np.abs(errors[k]).max(initial=0.0)))
    gap = float(np.abs(errors[worst]).max(initial=0.0))
    if gap > EINTHOVEN_MV:
        raise RecordError(
            name,
            f"{kind}: limb leads inconsistent ({worst} by up to {gap:.2f} mV): lead labels or "
            "compressed data not as the reader took them, or a calibration pulse not in every lead",
        )


def _read_mortara(
    path: Path, name: str, warn: list[str]
) -> tuple[np.ndarray, float, list[str], list[str]]:
    """A Mortara / Welch Allyn ELI XML export (ELI 250, ELI 280, ELI Link): its CHANNEL leads."""
    from ecgdatakit.parsing.parsers.mortara_el250 import MortaraEL250Parser

    record = _decode_with(MortaraEL250Parser, path, name, "Mortara ELI XML", warn)
    return _physical_leads(record, name, "Mortara ELI XML")


def _decode_with(parser: type, path: Path, name: str, kind: str, warn: list[str]) -> object:
    """``parser().parse(path)`` with its failures as one-line record errors and its warnings (a
    CRC mismatch, say) kept as the record's warnings."""
    from ecgdatakit import ECGDataKitError, MissingElementError

    try:
        with _DECODE_LOCK, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            record = parser().parse(path)
    except FileNotFoundError:
        raise RecordError(name, "file not found") from None
    except OSError as exc:
        raise RecordError(name, f"unreadable file ({exc.strerror or exc})") from None
    except MissingElementError as exc:  # its message is the element's name alone
        raise RecordError(name, f"unreadable {kind} file: no <{_one_line(exc)}> element") from None
    except ECGDataKitError as exc:  # its messages may name the format too ("MFER: ...")
        problem = _one_line(exc).removeprefix(f"{kind}: ")
        raise RecordError(name, f"unreadable {kind} file: {problem}") from None
    except Exception as exc:  # whatever else a file from the wild finds: one line, not a 500
        raise RecordError(
            name, f"unreadable {kind} file ({type(exc).__name__}: {_one_line(exc)})"
        ) from None
    counts: dict[str, int] = {}
    for w in caught:  # a file can repeat one warning 100,000 times: each once, with its count
        text = _one_line(w.message).removeprefix(f"{kind}: ")
        counts[text] = counts.get(text, 0) + 1
    lines = [f"{kind}: {t}" + (f" (x{n})" if n > 1 else "") for t, n in counts.items()]
    if len(lines) > MAX_WARNINGS:
        lines[MAX_WARNINGS - 1 :] = [f"{kind}: {len(lines) - MAX_WARNINGS + 1} more warning(s)"]
    warn.extend(lines)
    if not record.leads:
        raise RecordError(name, f"the {kind} file holds no leads")
    return record


def _one_line(message: object) -> str:
    return " ".join(str(message).split())


def _physical_leads(
    record: object, name: str, kind: str
) -> tuple[np.ndarray, float, list[str], list[str]]:
    leads = record.leads  # type: ignore[attr-defined]
    rates = sorted({lead.sampling_rate for lead in leads})
    if len(rates) > 1:
        raise RecordError(name, f"{kind}: leads sampled at different rates ({rates} Hz)")
    n = min(len(lead.samples) for lead in leads)
    columns, units = [], []
    for lead in leads:
        if lead.is_raw and not lead.resolution_unit:
            raise RecordError(
                name, f"{kind}: lead {lead.label} has no amplitude scale (raw ADC counts)"
            )
        if not (math.isfinite(lead.resolution) and lead.resolution):
            raise RecordError(
                name,
                f"{kind}: lead {lead.label} has an amplitude scale of {lead.resolution:g} "
                f"{lead.resolution_unit} per count",
            )
        physical = lead.to_physical()
        columns.append(np.asarray(physical.samples[:n], dtype=np.float64))
        units.append(physical.units)
    rate = _rate(float(rates[0]), kind, name)
    return np.stack(columns, axis=1), rate, [str(lead.label) for lead in leads], units


def _cut_calibration(signal: np.ndarray, rate: float, warn: list[str]) -> np.ndarray:
    """Drop the samples at either end in which every lead holds the same value (leads constant
    throughout, disconnected, aside), if they last ``CALIBRATION_MIN_S`` or more, saying so."""
    live = signal[:, np.ptp(signal, axis=0) > 0]  # a disconnected lead is constant throughout
    same = np.ptp(live, axis=1) == 0 if live.shape[1] > 1 else np.zeros(len(signal), bool)
    differ = np.flatnonzero(~same)
    if differ.size == 0:
        return signal  # all flat: validate() says so
    head, tail = int(differ[0]), len(signal) - 1 - int(differ[-1])
    least = CALIBRATION_MIN_S * rate
    start = head if head >= least else 0
    end = len(signal) - tail if tail >= least else len(signal)
    for count, where in ((head, "start"), (tail, "end")):
        if count >= least:
            warn.append(
                f"{count / rate:.2f} s at the {where}, the same in every lead "
                "(a calibration pulse), cut"
            )
    return signal[start:end]
