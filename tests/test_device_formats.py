"""SCP-ECG (EN 1064) files, Philips PageWriter / Sierra ECG XML, Mortara ELI XML and MFER
(ISO 22077-1), read through ecgdatakit.

The writers build files to the published layouts: SCP-ECG sections with their CRCs, uncompressed
or with the standard's default Huffman table over second differences; Philips XML with Base64
samples, uncompressed or XLI-compressed (LZW over second differences, limb leads stored as
residuals), ending in the calibration pulse the devices append; Mortara XML with one Base64
CHANNEL per lead; MFER as tag-length-value definitions (preamble, byte order, frame, sampling
rate or interval, sensitivity, a lead code per channel) and int16 samples in blocks.
"""

import base64
import binascii
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from ecgcnn import Predictor
from ecgcnn.recording import find_recordings, read_recording
from ecgcnn.records import LEADS
from ecgcnn.synthetic import synthesize_ecg
from test_serve import wait_ready
from test_waveforms import one_line_error

FS = 500
UV_PER_COUNT = 5
QUANTUM_MV = 0.01  # a 5 µV step is at most 2.5 µV off; room for derived leads
EIGHT = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")


def ecg(seconds=10.0, seed=0):
    return synthesize_ecg(["NORM"], fs=FS, duration_s=seconds, rng=np.random.default_rng(seed))


def counts(signal_mv, lead):
    return np.round(signal_mv[:, LEADS.index(lead)] * 1000 / UV_PER_COUNT).astype(np.int64)


# --- SCP-ECG ---------------------------------------------------------------------------------------

SCP_LEAD_CODES = {"I": 1, "II": 2, "V1": 3, "V2": 4, "V3": 5, "V4": 6, "V5": 7, "V6": 8,
                  "III": 61, "AVR": 62, "AVL": 63, "AVF": 64}  # fmt: skip


def _scp_section(sid, body):
    body += b"\0" * (len(body) % 2)  # sections have an even length
    head = struct.pack("<HI", sid, 16 + len(body)) + bytes([20, 20]) + b"SCPECG"
    return struct.pack("<H", binascii.crc_hqx(head + body, 0xFFFF)) + head + body


def _huffman_default(values):
    """The default table of EN 1064 (Section 2 code 19999): 0 -> '0', +-1..8 -> n ones, a zero
    and the sign; anything else 10 ones-and-a-zero escapes with 8 or 16 bits."""
    bits = []
    for v in values:
        v = int(v)
        if v == 0:
            bits.append("0")
        elif abs(v) <= 8:
            bits.append("1" * abs(v) + "0" + ("1" if v < 0 else "0"))
        elif -128 <= v < 128:
            bits.append("1111111110" + format(v & 0xFF, "08b"))
        else:
            bits.append("1111111111" + format(v & 0xFFFF, "016b"))
    text = "".join(bits)
    text += "0" * (-len(text) % 8)
    return int(text, 2).to_bytes(len(text) // 8, "big") if text else b""


def write_scp(path, signal_mv, leads=EIGHT, huffman=True, interval_us=2000):
    """An SCP-ECG resting ECG as carts store it: 8 leads (I, II, V1-V6; the other four are
    derived), 5 µV per count; with ``huffman`` second differences under the default table."""
    n = signal_mv.shape[0]
    data = []
    for lead in leads:
        x = counts(signal_mv, lead)
        if huffman:  # second differences: d0 = x0, d1 = x1, dn = xn - 2 x(n-1) + x(n-2)
            d = x.copy()
            d[2:] = x[2:] - 2 * x[1:-1] + x[:-2]
            data.append(_huffman_default(d))
        else:
            data.append(x.astype("<i2").tobytes())
    s1 = bytes([2]) + struct.pack("<H", 6) + b"P-001\0" + bytes([255, 0, 0])  # patient ID; end
    s3 = bytes([len(leads), 0b100])  # all leads recorded simultaneously
    s3 += b"".join(struct.pack("<IIB", 1, n, SCP_LEAD_CODES[lead]) for lead in leads)
    s6 = struct.pack("<HHBB", UV_PER_COUNT * 1000, interval_us, 2 if huffman else 0, 0)
    s6 += b"".join(struct.pack("<H", len(d)) for d in data) + b"".join(data)
    bodies = {1: s1, 3: s3, 6: s6}
    if huffman:
        bodies[2] = struct.pack("<H", 19999)
    sections, offset = {}, 7 + 16 + 12 * 10  # 1-based: after the record's CRC, size and section 0
    for sid in sorted(bodies):
        sections[sid] = (_scp_section(sid, bodies[sid]), offset)
        offset += len(sections[sid][0])
    pointers = struct.pack("<HII", 0, 16 + 120, 7) + b"".join(
        struct.pack("<HII", sid, len(sections[sid][0]), sections[sid][1]) if sid in sections
        else struct.pack("<HII", sid, 0, 0)
        for sid in range(1, 12)
    )  # fmt: skip
    record = _scp_section(0, pointers) + b"".join(s for s, _ in sections.values())
    size = struct.pack("<I", 6 + len(record))
    Path(path).write_bytes(
        struct.pack("<H", binascii.crc_hqx(size + record, 0xFFFF)) + size + record
    )
    return path


# --- Philips XML -----------------------------------------------------------------------------------


def _lzw10(data):
    """LZW with 10-bit codes, most significant bit first, as the XLI chunks use."""
    table = {bytes([k]): k for k in range(256)}
    next_code, w, codes = 256, b"", []
    for byte in data:
        wc = w + bytes([byte])
        if wc in table:
            w = wc
            continue
        codes.append(table[w])
        if next_code <= 1022:
            table[wc] = next_code
            next_code += 1
        w = bytes([byte])
    if w:
        codes.append(table[w])
    text = "".join(format(c, "010b") for c in codes)
    text += "0" * (-len(text) % 8)
    return int(text, 2).to_bytes(len(text) // 8, "big")


def _xli_chunk(x):
    """One lead: second-order differences as 16-bit words, high bytes then low bytes, LZW."""
    x = np.asarray(x, dtype=np.int64)
    r = np.zeros(len(x), dtype=np.int64)
    r[2:] = 2 * x[1:-1] - x[:-2] - x[2:]  # what the decoder subtracts at sample i
    words = np.concatenate((x[:2], r[3:] + 64, [64])).astype("<i2").view("<u2")
    packed = (words >> 8).astype(np.uint8).tobytes() + (words & 0xFF).astype(np.uint8).tobytes()
    body = _lzw10(packed)
    return struct.pack("<ihh", len(body), 0, int(r[2])) + body


def _xli(stored):
    return base64.encodebytes(b"".join(_xli_chunk(x) for x in stored)).decode()


def write_philips(path, signal_mv, xli=True, calibration=True, encoding="utf-8"):
    """A PageWriter-style export: 12 leads at 500 Hz, 5 µV per count, ``durationperchannel``
    11 s: the ECG, then (``calibration``) flat samples and a 1 mV pulse in every lead, as the
    devices append. XLI stores III, aVR, aVL and aVF as residuals of I and II."""
    n_ecg = signal_mv.shape[0]
    n = 11 * FS
    leads = {lead: np.zeros(n, dtype=np.int64) for lead in LEADS}
    for lead in LEADS:
        leads[lead][:n_ecg] = counts(signal_mv, lead)
        if calibration:
            leads[lead][n - 150 : n - 50] = 1000 // UV_PER_COUNT
    if xli:
        i, ii, iii = leads["I"], leads["II"], leads["III"]
        stored = [i, ii, ii - i - iii, -leads["AVR"] - (i + ii) // 2,
                  (i - iii) // 2 - leads["AVL"], (ii + iii) // 2 - leads["AVF"],
                  *(leads[f"V{k}"] for k in range(1, 7))]  # fmt: skip
        data, attrs = _xli(stored), 'compressflag="True" compressmethod="XLI"'
    else:
        blob = np.concatenate([leads[lead] for lead in LEADS]).astype("<i2").tobytes()
        data, attrs = base64.encodebytes(blob).decode(), 'compressflag="False"'
    labels = "I II III aVR aVL aVF V1 V2 V3 V4 V5 V6"
    text = f"""<?xml version="1.0" encoding="{encoding}"?>
<restingecgdata xmlns="http://www3.medical.philips.com" status="Not yet determined">
  <documentinfo><documenttype>PhilipsECG</documenttype><documentversion>1.04</documentversion>
  </documentinfo>
  <dataacquisition date="2026-11-30" time="10:15:30">
    <machine machineid="1">PageWriter TC70</machine>
    <signalcharacteristics><acquisitiontype>STD-12</acquisitiontype></signalcharacteristics>
  </dataacquisition>
  <patient><generalpatientdata><patientid>P-001</patientid></generalpatientdata></patient>
  <waveforms>
    <parsedwaveforms {attrs} dataencoding="Base64" numberofleads="12" leadlabels="{labels}"
        durationperchannel="11000" samplespersecond="{FS}" resolution="{UV_PER_COUNT}"
        signaloffset="0" signalsigned="True" bitspersample="16">{data}</parsedwaveforms>
  </waveforms>
</restingecgdata>
"""
    Path(path).write_bytes(text.encode(encoding))
    return path


# --- Mortara ELI XML -------------------------------------------------------------------------------

MORTARA_NAMES = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")


def write_mortara(path, signal_mv, units_per_mv=400, names=MORTARA_NAMES):
    """An ELI 280 export: one CHANNEL per lead, Base64 16-bit counts at ``units_per_mv``."""
    channels = []
    for lead in names:
        digital = np.round(signal_mv[:, LEADS.index(lead.upper())] * units_per_mv).astype("<i2")
        channels.append(
            f'<CHANNEL OFFSET="0" BITS="16" FORMAT="SIGNED" UNITS_PER_MV="{units_per_mv}" '
            f'DURATION="{len(digital)}" SAMPLE_FREQ="{FS}" NAME="{lead}" ENCODING="BASE64" '
            f'DATA="{base64.b64encode(digital.tobytes()).decode()}"/>'
        )
    text = f"""<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by ELI 280 -->
<ECG ACQUISITION_TIME="20261130101530" VENT_RATE="72" AVERAGE_RR="833">
<SOURCE TYPE="ELI 280" MODEL="ELI 280" FIRMWARE_VERSION="2.3.0"/>
<SUBJECT ID="P-001" GENDER="FEMALE"/>
{chr(10).join(channels)}
</ECG>
"""
    Path(path).write_text(text, encoding="utf-8")
    return path


# --- round trips -----------------------------------------------------------------------------------


@pytest.mark.parametrize("huffman", [True, False])
def test_scp_8_leads_read_back_with_the_limb_leads_derived(tmp_path, huffman):
    sig = ecg(seed=1)
    rec = read_recording(write_scp(tmp_path / "ecg.scp", sig, huffman=huffman))
    assert rec.fs == FS and rec.leads == LEADS and rec.signal.shape == sig.shape
    assert np.abs(rec.signal - sig).max() < QUANTUM_MV  # III, aVR, aVL, aVF from I and II
    assert rec.warnings == ("lead(s) III, AVR, AVL, AVF derived from I and II",)


def test_scp_12_leads_at_another_rate_read_in_the_file_s_rate(tmp_path):
    sig = ecg(seed=2)
    path = write_scp(tmp_path / "ecg.scp", sig, leads=tuple(SCP_LEAD_CODES), interval_us=4000)
    rec = read_recording(path, fs=500)  # the file says 250 Hz (4 ms a sample): it wins
    assert rec.fs == 250 and rec.leads == LEADS
    assert np.abs(rec.signal - sig).max() < QUANTUM_MV
    assert rec.warnings == ("the file says 250 Hz: --fs 500 ignored",)


def test_scp_rate_is_the_file_s_interval_not_rounded(tmp_path):
    """Section 6 gives the sample interval in microseconds: 3,000 us is 333.3 Hz, not 333."""
    sig = ecg(seed=2)
    path = write_scp(tmp_path / "ecg.scp", sig, leads=tuple(SCP_LEAD_CODES), interval_us=3000)
    rec = read_recording(path)
    assert rec.fs == pytest.approx(1e6 / 3000) and rec.signal.shape == sig.shape


@pytest.mark.parametrize("xli", [True, False])
def test_philips_xml_reads_the_ecg_without_the_calibration_pulse(tmp_path, xli):
    sig = ecg(seed=3)
    rec = read_recording(write_philips(tmp_path / "philips.xml", sig, xli=xli))
    assert rec.fs == FS and rec.leads == LEADS
    # 11 s stored: 10 s of ECG, then flat samples and a 1 mV pulse in every lead, which are cut
    assert rec.signal.shape == sig.shape
    assert np.abs(rec.signal - sig).max() < QUANTUM_MV
    assert rec.warnings == ("1.00 s at the end, the same in every lead (a calibration pulse), cut",)


def test_a_disconnected_lead_does_not_keep_the_calibration_pulse_in(tmp_path):
    sig = ecg(seed=19)
    sig[:, LEADS.index("V3")] = 0.0  # an electrode off: 0 throughout, also under the pulse
    path = write_philips(tmp_path / "v3off.xml", sig, xli=False)
    text = path.read_text()
    start = text.index('bitspersample="16">') + len('bitspersample="16">')
    blob = bytearray(base64.b64decode(text[start : text.index("</parsedwaveforms>")]))
    v3 = 8 * 11 * FS * 2  # lead 9 of 12, 11 s of 16-bit samples each
    blob[v3 : v3 + 11 * FS * 2] = bytes(11 * FS * 2)
    path.write_text(
        text[:start]
        + base64.encodebytes(bytes(blob)).decode()
        + text[text.index("</parsedwaveforms>") :]
    )
    rec = read_recording(path, allow_missing_leads=True)  # the flat lead is zero-filled
    assert rec.signal.shape == sig.shape and np.abs(rec.signal - sig).max() < QUANTUM_MV


def test_philips_xml_in_utf_16_without_calibration_keeps_every_sample(tmp_path):
    sig = ecg(seconds=11.0, seed=4)
    path = write_philips(tmp_path / "tc.xml", sig, calibration=False, encoding="utf-16")
    rec = read_recording(path)
    assert rec.signal.shape == sig.shape and rec.warnings == ()
    assert np.abs(rec.signal - sig).max() < QUANTUM_MV


def test_mortara_xml_reads_back_within_quantisation(tmp_path):
    sig = ecg(seed=11)
    rec = read_recording(write_mortara(tmp_path / "eli.xml", sig))
    assert rec.fs == FS and rec.leads == LEADS and rec.signal.shape == sig.shape
    assert np.abs(rec.signal - sig).max() < QUANTUM_MV and rec.warnings == ()


def test_directories_yield_scp_philips_and_mortara_files(tmp_path):
    sig = ecg(seed=5)
    (tmp_path / "cart").mkdir()
    files = [write_scp(tmp_path / "cart" / "a.scp", sig), write_scp(tmp_path / "B.SCP", sig),
             write_philips(tmp_path / "c.xml", sig), write_mortara(tmp_path / "d.xml", sig)]  # fmt: skip
    (tmp_path / "pom.xml").write_text("<project/>")
    found, errors = find_recordings([tmp_path])
    assert sorted(found) == sorted(files) and errors == []


# --- bad input -------------------------------------------------------------------------------------


def test_broken_scp_files_are_one_line_errors(tmp_path):
    good = write_scp(tmp_path / "good.scp", ecg(seed=6)).read_bytes()
    cut = tmp_path / "cut.scp"
    cut.write_bytes(good[:400])
    one_line_error(cut, "SCP-ECG")
    text = tmp_path / "notes.scp"
    text.write_text("not an ECG\n" * 10)
    one_line_error(text, "not an SCP-ECG file")
    # leads recorded one group after another (a 3-channel cart) cannot feed a 12-lead model
    sig = ecg(seed=7)
    path = write_scp(tmp_path / "seq.scp", sig, huffman=False)
    raw = bytearray(path.read_bytes())
    s3 = raw.index(bytes([8, 0b100]))  # Section 3: 8 leads, simultaneous
    struct.pack_into("<II", raw, s3 + 2 + 9 * 2, 2501, 5000)  # V1 from 5 s on
    path.write_bytes(bytes(raw))
    one_line_error(path, "not recorded together")
    # a lead said to hold 4 billion samples: refused before decoding
    path = write_scp(tmp_path / "huge.scp", sig)
    raw = bytearray(path.read_bytes())
    s3 = raw.index(bytes([8, 0b100]))
    for k in range(8):
        struct.pack_into("<I", raw, s3 + 2 + 9 * k + 4, 0xFFFFFFF0)
    path.write_bytes(bytes(raw))
    one_line_error(path, r"SCP-ECG declares 8\.59e\+06 s per lead \(at most 300 s read\)")


def test_broken_philips_files_are_one_line_errors(tmp_path):
    path = write_philips(tmp_path / "p.xml", ecg(seed=8))
    old = path.read_text()
    path.write_text(old.replace("<documentversion>1.04", "<documentversion>0.9"))
    one_line_error(path, "Philips.*0.9")
    path.write_text(old.replace('samplespersecond="500"', 'samplespersecond="x"'))
    one_line_error(path, "Philips.*sampling rate")
    bomb = tmp_path / "bomb.xml"
    bomb.write_text('<?xml version="1.0"?>\n<!DOCTYPE restingecgdata [<!ENTITY a "aaaa">]>\n'
                    "<restingecgdata>&a;</restingecgdata>")  # fmt: skip
    one_line_error(bomb, "entities")
    eli = write_mortara(tmp_path / "eli.xml", ecg(seed=12))
    eli.write_text(
        eli.read_text().replace('SAMPLE_FREQ="500" NAME="V2"', 'SAMPLE_FREQ="0" NAME="V2"')
    )
    one_line_error(eli, "unreadable Mortara ELI XML file: .*SAMPLE_FREQ")


# --- prediction and serving ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def predictor(served_checkpoint):
    return Predictor.from_checkpoint(served_checkpoint)


def probs(prediction):
    return np.array(list(prediction.probabilities.values()))


@pytest.mark.slow
def test_scp_philips_mortara_and_mfer_predict_like_the_original_array_and_upload(
    served_checkpoint, predictor, tmp_path
):
    from ecgcnn.serve import MiB, Settings, create_app

    sig = ecg(seed=9)
    want = probs(predictor.predict(sig, fs=FS))
    paths = [write_scp(tmp_path / "a.scp", sig), write_philips(tmp_path / "b.xml", sig),
             write_mortara(tmp_path / "c.xml", sig), write_mfer(tmp_path / "d.mwf", sig, EIGHT)]  # fmt: skip
    for path in paths:
        assert np.abs(probs(predictor.predict_record(path)) - want).max() < 0.02, path.name
    app = create_app(Settings(str(served_checkpoint), max_body_bytes=4 * MiB))
    with TestClient(app, raise_server_exceptions=False) as client:
        wait_ready(client)
        for path in paths:
            r = client.post("/v1/predict", files=[("files", (path.name, path.read_bytes()))])
            assert r.status_code == 200, r.text
            assert r.json()["probabilities"] == pytest.approx(
                predictor.predict_record(path).probabilities, abs=1e-6
            )
        # an MFER file that would cost ecgdatakit 2.75 GB is refused before it is decoded
        body, match = HOSTILE_MFER["tiny frames"]
        hostile = _hostile_head() + body + b"\x80\x00"
        r = client.post("/v1/predict", files=[("files", ("e.mwf", hostile))])
        assert r.status_code == 422 and "MFER frames declare" in r.text, r.text


# --- found by a review: bounded work, thread-safe warnings, encodings, limb-lead consistency -------


def _lzw_bomb(n_codes):
    """10-bit LZW codes that each repeat the longest string so far: 1, 2, ... 767 bytes a code."""
    codes = [97, *range(256, min(1023, 256 + n_codes - 1))]
    codes += [1022] * (n_codes - len(codes))
    text = "".join(format(c, "010b") for c in codes)
    text += "0" * (-len(text) % 8)
    return int(text, 2).to_bytes(len(text) // 8, "big")


def test_an_xli_chunk_that_decompresses_far_beyond_its_lead_is_refused_unread(tmp_path):
    path = write_philips(tmp_path / "bomb.xml", ecg(seed=13))
    body = _lzw_bomb(3000)  # 3.7 KB that decompress to 1.8 MB, for a lead of 11,000 bytes
    blob = base64.encodebytes(struct.pack("<ihh", len(body), 0, 0) + body).decode()
    text = path.read_text()
    start = text.index('bitspersample="16">') + len('bitspersample="16">')
    path.write_text(text[:start] + blob + text[text.index("</parsedwaveforms>") :])
    one_line_error(path, "XLI chunk 1 decompresses to more than 23,024 bytes")


def test_scp_files_declaring_more_than_an_export_holds_are_refused_undecoded(tmp_path):
    path = write_scp(tmp_path / "long.scp", ecg(seed=14))
    raw = bytearray(path.read_bytes())
    s3 = raw.index(bytes([8, 0b100]))
    for k in range(8):  # 8 leads of 400 s at 500 Hz: 1.6 million Huffman-coded samples
        struct.pack_into("<I", raw, s3 + 2 + 9 * k + 4, 200_000)
    path.write_bytes(bytes(raw))
    one_line_error(path, r"SCP-ECG declares 400 s per lead \(at most 300 s read\)")


def test_warnings_stay_with_their_own_file_when_read_at_once(tmp_path):
    """serve reads uploads in several threads: a CRC warning of one file is that file's alone."""
    from concurrent.futures import ThreadPoolExecutor

    good = write_scp(tmp_path / "good.scp", ecg(seed=15))
    bad = tmp_path / "bad.scp"
    raw = bytearray(good.read_bytes())
    raw[0] ^= 0xFF  # the record's CRC
    bad.write_bytes(bytes(raw))
    filters = list(warnings.filters)
    with ThreadPoolExecutor(4) as pool:
        recs = list(pool.map(read_recording, [bad, good] * 8))
    for rec in recs:
        crc = any("CRC" in w for w in rec.warnings)
        assert crc == rec.name.endswith("bad.scp"), (rec.name, rec.warnings)
    assert warnings.filters == filters


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be", "shift_jis"])
def test_xml_in_any_declared_encoding_reads_and_is_found(tmp_path, encoding):
    sig = ecg(seed=16)
    path = write_philips(tmp_path / "p.xml", sig, encoding=encoding)  # no byte order mark
    rec = read_recording(path)
    assert rec.signal.shape == sig.shape and np.abs(rec.signal - sig).max() < QUANTUM_MV
    assert find_recordings([tmp_path]) == ([path], [])


def test_philips_limb_leads_that_break_einthoven_are_an_error(tmp_path):
    """ecgdatakit rebuilds XLI limb leads only under the standard labels; other labels, or data
    cut at the wrong places, would give leads that are not an ECG: refused, not predicted."""
    path = write_philips(tmp_path / "p.xml", ecg(seed=17))
    path.write_text(
        path.read_text().replace('leadlabels="I II III aVR', 'leadlabels="I II III -aVR')
    )
    one_line_error(path, r"Philips XML: limb leads inconsistent \(\S+ != .+ by up to [\d.]+ mV\)")


def test_directories_pass_over_scp_named_files_that_are_not_scp(tmp_path):
    scp = write_scp(tmp_path / "a.scp", ecg(seed=18))
    (tmp_path / "dialup.scp").write_text('proc main\n  transmit "ATZ"\nendproc\n')
    assert find_recordings([tmp_path]) == ([scp], [])


# --- MFER (ISO 22077-1, Nihon Kohden and Fukuda Denshi carts) ---------------------------------------

MFER_LEAD_CODES = {"I": 1, "II": 2, "V1": 3, "V2": 4, "V3": 5, "V4": 6, "V5": 7, "V6": 8,
                   "III": 61, "AVR": 62, "AVL": 63, "AVF": 64}  # fmt: skip


def _mfer(tag, value, channel=None):
    """One definition: the tag (MWF_ATT followed by its channel number), the length (one byte
    below 128, else 0x80 + the count of big-endian length bytes), the value."""
    head = bytes([tag]) if channel is None else bytes([tag, channel])
    n = len(value)
    if n < 0x80:
        return head + bytes([n]) + value
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return head + bytes([0x80 | len(size)]) + size + value


def _mfer_scale(unit, exponent, mantissa, order):
    """MWF_IVL / MWF_SEN: unit code, signed decimal exponent, mantissa in the file's byte order."""
    return bytes([unit]) + struct.pack("b", exponent) + struct.pack(order + "i", mantissa)


def write_mfer(path, signal_mv, leads=LEADS, *, little_endian=False, interval_ms=None,
               sensitivity=(-7, 25), scaled=True, median_beat=False, block=None,
               frames=False):  # fmt: skip
    """A standard 12-lead MFER file: preamble, byte order, frame (block length, channels,
    sequences), int16 data, sampling rate (or interval), sensitivity in volts, one MWF_ATT per
    channel naming its lead, then the waveform: for each sequence, each channel's block. With
    ``frames`` each sequence is a frame of its own, as long-term recorders write them."""
    order = "<" if little_endian else ">"
    exponent, mantissa = sensitivity
    lsb_mv = mantissa * 10.0**exponent * 1000 or 1.0
    columns = [LEADS.index(lead.upper()) for lead in leads]
    data = np.round(signal_mv[:, columns] / lsb_mv).astype(np.int16)
    n = len(data)
    block = block or n
    seq = -(-n // block)
    data = np.concatenate([data, np.zeros((seq * block - n, len(leads)), data.dtype)])
    waveform = (
        data.reshape(seq, block, len(leads)).transpose(0, 2, 1).astype(order + "i2").tobytes()
    )
    rate = (_mfer_scale(1, -3, interval_ms, order) if interval_ms  # an interval in seconds
            else _mfer_scale(0, 0, FS, order))  # a frequency in Hz  # fmt: skip
    out = _mfer(0x40, b"MFR Standard 12 leads ECG".ljust(32))
    out += _mfer(0x01, bytes([1 if little_endian else 0])) + _mfer(0x02, bytes([1, 5, 0]))
    if median_beat:  # a 1 s dominant beat frame (waveform type 9) ahead of the rhythm
        out += _mfer(0x08, struct.pack(">H", 9)) + _mfer(0x04, struct.pack(order + "I", FS))
        out += _mfer(0x05, bytes([len(leads)])) + _mfer(0x06, bytes([1]))
        out += _mfer(0x0A, bytes([0])) + _mfer(0x0B, _mfer_scale(0, 0, FS, order))
        out += _mfer(0x0C, _mfer_scale(0, exponent, mantissa, order))
        out += _mfer(0x1E, (data[:FS].T * 2).astype(order + "i2").tobytes())
    out += _mfer(0x08, struct.pack(">H", 1))  # standard 12-lead ECG
    out += _mfer(0x04, struct.pack(order + "I", block)) + _mfer(0x05, bytes([len(leads)]))
    out += _mfer(0x06, struct.pack(order + "I", 1 if frames else seq)) + _mfer(0x0A, bytes([0]))
    out += _mfer(0x0B, rate)
    if scaled:
        out += _mfer(0x0C, _mfer_scale(0, exponent, mantissa, order))  # volts per count
    for k, lead in enumerate(leads):
        out += _mfer(0x3F, _mfer(0x09, bytes([MFER_LEAD_CODES[lead.upper()]])), channel=k)
    if frames:
        size = block * len(leads) * 2
        out += b"".join(_mfer(0x1E, waveform[k : k + size]) for k in range(0, len(waveform), size))
    else:
        out += _mfer(0x1E, waveform[: n * len(leads) * 2 if block == n else None])
    out += b"\x80\x00"
    path = Path(path)
    path.write_bytes(out)
    return path


MFER_QUANTUM_MV = 0.005  # a 2.5 µV step, and room for derived leads


@pytest.mark.parametrize("little_endian", [False, True])
def test_mfer_12_leads_read_back_in_the_model_s_order(tmp_path, little_endian):
    sig = ecg(seed=19)
    shuffled = ("V1", "V2", "V3", "V4", "V5", "V6", "I", "II", "III", "aVR", "aVL", "aVF")
    path = write_mfer(tmp_path / "a.mwf", sig, shuffled, little_endian=little_endian)
    rec = read_recording(path)
    assert rec.fs == FS and rec.leads == LEADS and rec.signal.shape == sig.shape
    assert np.abs(rec.signal - sig).max() < MFER_QUANTUM_MV and rec.warnings == ()


def test_mfer_8_leads_in_blocks_at_an_interval_derive_the_limb_leads(tmp_path):
    """Carts store I, II, V1-V6 in blocks of samples; a 3 ms interval is 333.3 Hz, not 333."""
    sig = ecg(seed=20)
    path = write_mfer(tmp_path / "b.mwf", sig, EIGHT, block=FS // 5, interval_ms=2)
    rec = read_recording(path)
    assert rec.fs == FS and rec.signal.shape == sig.shape
    assert np.abs(rec.signal - sig).max() < MFER_QUANTUM_MV * 2
    assert any("derived" in w or "computed" in w for w in rec.warnings), rec.warnings
    odd = read_recording(write_mfer(tmp_path / "c.mwf", sig, interval_ms=3))
    assert odd.fs == pytest.approx(1000 / 3) and odd.signal.shape == sig.shape


def test_mfer_dominant_beats_ahead_of_the_rhythm_are_not_the_ecg(tmp_path):
    sig = ecg(seed=21)
    rec = read_recording(write_mfer(tmp_path / "d.mwf", sig, median_beat=True))
    assert rec.signal.shape == sig.shape and np.abs(rec.signal - sig).max() < MFER_QUANTUM_MV


def test_broken_mfer_files_are_one_line_errors(tmp_path):
    sig = ecg(seed=22)
    one_line_error(write_mfer(tmp_path / "raw.mwf", sig, scaled=False), "no amplitude scale")
    zero = write_mfer(tmp_path / "zero.mwf", sig, sensitivity=(-7, 0))  # found by fuzzing
    one_line_error(zero, "MFER: lead I has an amplitude scale of 0 uV")
    good = write_mfer(tmp_path / "good.mwf", sig).read_bytes()
    cut = tmp_path / "cut.mwf"
    cut.write_bytes(good[: len(good) // 2])
    one_line_error(cut, "MFER")
    many = tmp_path / "many.mwf"  # a million channels of a sample each: 47 s and 1.7 GB to decode
    many.write_bytes(good.replace(b"\x05\x01\x0c", b"\x05\x03\x01\x86\xa0", 1))
    one_line_error(many, r"MFER declares 100,000 channels \(at most 64 read\)")
    text = tmp_path / "notes.mwf"
    text.write_text("not an ECG\n" * 10)
    one_line_error(text, "not an MFER file")


def test_directories_yield_mfer_files_and_pass_over_others(tmp_path):
    sig = ecg(seed=23)
    files = [write_mfer(tmp_path / "a.mwf", sig), write_mfer(tmp_path / "B.MWF", sig, EIGHT)]
    (tmp_path / "music.mwf").write_bytes(b"MThd\x00\x00\x00\x06" + bytes(100))
    found, errors = find_recordings([tmp_path])
    assert sorted(found) == sorted(files) and errors == []


def test_warnings_repeated_by_a_file_are_counted_not_listed(tmp_path):
    """A review's finding: 349,525 identical ecgdatakit warnings from a 1 MiB MFER file, 53 MB of
    response in serve. Identical warnings now come once with their count, and at most 20 in all."""
    good = write_mfer(tmp_path / "good.mwf", ecg(seed=24)).read_bytes()
    noisy = tmp_path / "noisy.mwf"
    noisy.write_bytes(good[:-2] + _mfer(0x3F, b"", channel=100) * 5000 + good[-2:])
    rec = read_recording(noisy)
    assert len(rec.warnings) <= 20
    assert any("(x5000)" in w for w in rec.warnings), rec.warnings
    assert not any(w.startswith("MFER: MFER:") for w in rec.warnings)


# --- MFER: what a file declares is bounded before ecgdatakit decodes it ---------------------------
# A review found small files that cost ecgdatakit seconds and gigabytes. One walk over every
# definition, in the order ecgdatakit reads them, refuses them first.


def test_mfer_in_frames_of_a_second_reads_as_one_recording(tmp_path):
    sig = ecg(seed=25)
    path = write_mfer(tmp_path / "holter.mwf", sig, block=FS, frames=True)
    assert path.read_bytes().count(b"\x1e\x82\x2e\xe0") == 10  # ten frames of 12,000 bytes
    rec = read_recording(path)
    assert rec.signal.shape == sig.shape and np.abs(rec.signal - sig).max() < MFER_QUANTUM_MV


def _hostile_head(channels=1, block=1):
    """What a hostile file needs ahead of its trick: preamble, byte order, rate, sensitivity,
    block length, channel count and a lead for the first channel."""
    out = _mfer(0x40, b"MFR ".ljust(32)) + _mfer(0x01, b"\x00")
    out += _mfer(0x0B, _mfer_scale(0, 0, FS, ">")) + _mfer(0x0C, _mfer_scale(0, -7, 25, ">"))
    out += _mfer(0x04, struct.pack(">I", block)) + _mfer(0x05, bytes([channels]))
    return out + _mfer(0x3F, _mfer(0x09, b"\x01"), channel=0)


def _channels(n):
    return _mfer(0x05, n.to_bytes(4, "big"))


def _frame(channels):
    return _mfer(0x1E, bytes(2 * channels))


def _nested(depth, inner):
    for _ in range(depth):
        inner = _mfer(0x67, inner)
    return inner


HOSTILE_MFER = {  # name: (body after the head, the error expected); the review's cost in comments
    # frames of one byte declaring 1 MiB sequences: 2.75 GB for 670 bytes
    "tiny frames": (_mfer(0x04, struct.pack(">I", 1 << 19)) + _mfer(0x1E, b"\x00") * 200,
                    r"MFER frames declare 1,572,864 samples for 3 bytes of waveform data"),
    # a channel count where the old check did not look: 32 s and 1.7 GB for a million
    "channels in a set": (_mfer(0x67, _channels(100_000)) + _frame(1), "100,000 channels"),
    "channels after a long note": (_mfer(0x16, b"x" * 70_000) + _channels(100_000) + _frame(1),
                                   "100,000 channels"),
    "channels after an indefinite set": (b"\x67\x80" + _mfer(0x16, b"n") + b"\x00\x00"
                                         + _channels(100_000) + _frame(1), "100,000 channels"),
    "channels for a second frame": (_frame(1) + _channels(100_000) + _frame(1), "100,000 channels"),
    # nested sets: each level's walk re-reads everything inside it (5.4 s for 24 KB)
    "indefinite sets 900 deep": (b"\x67\x80" * 900 + b"\x16\x00" * 10_000 + b"\x00\x00" * 900
                                 + _frame(1), r"definitions nested more than 8 deep"),
    "sets 5000 deep": (_nested(5000, _mfer(0x16, b"x")) + _frame(1),
                       r"definitions nested more than 8 deep"),
    # many frames: 24 s and 1.7 GB for 200,000
    "many frames": (_mfer(0x05, b"\x0c") + _frame(12) * 10_001, r"more than 10,000 waveform frames"),
    "many definitions": (b"\x41\x02\x00\x01" * 100_001 + _frame(1), r"more than 100,000 definitions"),
    # a text encoding ecgdatakit looks up by the file's name for it: punycode decodes a 1 MB note
    # in 16 s (its time grows with the square of the size); an unknown name costs an import attempt
    # and stays in Python's codec cache for the life of the process (found by the third review)
    "punycode text": (_mfer(0x03, b"punycode") + _mfer(0x16, b"-" + b"a" * 1000) + _frame(1),
                      r"MFER: character set 'punycode' \(MWF_TXC\) is not one of ISO 22077's"),
    "unknown character sets": (b"".join(_mfer(0x03, b"x%06d" % i) for i in range(100)) + _frame(1),
                               r"MFER: character set 'x000000' \(MWF_TXC\)"),
    # ecgdatakit's cost per frame grows with its channels, and with each group of channels that
    # share a sequence count (a numpy dtype built for each): 27 s for 660 KB of 64-channel frames
    "wide frames": (_mfer(0x05, b"\x40") + _frame(64) * 3200, r"more than 400,000 channel blocks"),
    "sequence stairs": (_mfer(0x05, b"\x40")
                        + b"".join(_mfer(0x3F, _mfer(0x06, bytes([c + 1])), channel=c) for c in range(64))
                        + _frame(64) * 200, r"more than 400,000 channel blocks"),
    "much padding": (b"\x00" * (1 << 20) + b"\x00" + _frame(1), r"more than 1,048,576 bytes of padding"),
}  # fmt: skip


@pytest.mark.parametrize("case", HOSTILE_MFER)
def test_mfer_files_that_would_cost_the_decoder_far_more_than_their_size_are_refused_undecoded(
    tmp_path, monkeypatch, case
):
    from ecgdatakit.parsing.parsers.mfer import MFERParser

    def parse(*args):
        raise AssertionError("decoded")

    monkeypatch.setattr(MFERParser, "parse", parse)
    body, match = HOSTILE_MFER[case]
    path = tmp_path / "hostile.mwf"
    path.write_bytes(_hostile_head() + body + b"\x80\x00")
    one_line_error(path, match)


def test_mfer_structure_errors_name_the_byte(tmp_path):
    head = _hostile_head()
    cases = {"long.mwf": head + b"\x16\x05ab", "indefinite.mwf": head + b"\x67\x80" + _frame(1),
             "length.mwf": head + b"\x16\x85" + bytes(5)}  # fmt: skip
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    at = len(head)
    one_line_error(
        tmp_path / "long.mwf", rf"MFER: definition at byte {at} declares 5 bytes, 2 remain"
    )
    one_line_error(
        tmp_path / "indefinite.mwf",
        rf"MFER: the definition at byte {at} has an indefinite length and no end",
    )
    one_line_error(tmp_path / "length.mwf", rf"MFER: the length at byte {at + 1} takes 5 bytes")


def test_mfer_character_sets_of_the_standard_read(tmp_path):
    good = write_mfer(tmp_path / "good.mwf", ecg(seed=26)).read_bytes()
    at = good.index(b"\x01\x01\x00")  # ahead of the byte order
    for name in (b"ASCII", b"ISO 8859-1", b"ISO-8859-15", b"JIS X 0208", b"UTF-8", b"utf-16le"):
        path = tmp_path / "text.mwf"
        path.write_bytes(good[:at] + _mfer(0x03, name) + _mfer(0x16, "Ω note".encode()) + good[at:])
        rec = read_recording(path)
        assert rec.signal.shape == (10 * FS, 12), name
