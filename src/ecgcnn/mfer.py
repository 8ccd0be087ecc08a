"""MFER files (Medical waveform Format Encoding Rules, ISO 22077-1), as Nihon Kohden and Fukuda
Denshi carts and long-term recorders export them, decoded by ecgdatakit.

A file is a sequence of tag-length-value definitions: byte order, frame layout (block length,
channels, sequences), data type, sampling and sensitivity, per-channel attributes (MWF_ATT),
groups (MWF_SET), and waveform frames (MWF_WAV) that hold samples uncompressed. A length is one
byte below 128, 0x80 + the count of big-endian length bytes after it, or 0x80 alone: indefinite,
ended by two zero bytes.

ecgdatakit's decoder costs what a file declares rather than what it holds: a 670-byte file of
tiny frames that each declare a 1 MiB sequence took 2.75 GB, channel counts or deep nesting
where a short look does not reach took tens of seconds, a note in a character set named
"punycode" minutes. :func:`check_mfer` walks every definition once, in the order ecgdatakit reads
them, keeping the state that decides a frame's size (byte order, channel count, block length,
sequences, data type, for the file and for each channel), and refuses such a file before it is
decoded. Every problem is a one-line
:class:`~ecgcnn.errors.RecordError` naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ecgcnn.errors import RecordError
from ecgcnn.waveforms import (
    MAX_CHANNELS,
    SNIFF_BYTES,
    _decode_with,
    _physical_leads,
    _rate,
    _read_bytes,
    file_head,
)

MFER_SUFFIXES = (".mwf", ".mfer", ".mfr")  # ISO 22077-1 names .mwf; some exporters the others

# Limits of the walk ahead of decoding. A 12-lead resting ECG has a few dozen definitions and one
# frame; a day-long recording in 10 s frames has 8,640 frames and about as many definitions.
# ecgdatakit spends about 0.1 ms and 7 KB on each 12-channel frame and a few microseconds on any
# other definition or padding byte.
MAX_DEPTH = 8  # groups (MWF_SET) and channel attributes (MWF_ATT) nested within each other
MAX_FRAMES = 10_000
MAX_DEFINITIONS = 100_000
MAX_PADDING = 1 << 20  # bytes of zero padding between definitions
# ecgdatakit's work on a frame grows with its channels, and again with the channels of each group
# that shares a sequence count (a numpy record type is built for each group): a "channel block" is
# one channel of one frame, or of one such group. 12 leads in a day of 10 s frames make 207,360.
MAX_CHANNEL_BLOCKS = 400_000
# A sequence the data ends inside is decoded in full (NaN where samples are missing): over all
# frames, at most this many samples more than the waveform data holds bytes.
MAX_MISSING_SAMPLES = 1 << 20

_BLE, _TXC, _BLK, _CHN, _SEQ, _DTP, _WAV, _ATT, _SET, _END = (
    0x01, 0x03, 0x04, 0x05, 0x06, 0x0A, 0x1E, 0x3F, 0x67, 0x80,
)  # fmt: skip
# Character sets (MWF_TXC) ISO 22077-1 names (Table 5-34), as prefixes of the name with spaces,
# hyphens and underscores left out, and a few that Python decodes in linear time. ecgdatakit looks
# up any other name with codecs.lookup: punycode decodes in quadratic time, and an unknown name
# costs an import attempt and stays in Python's codec cache for the life of the process.
CHARSETS = ("ascii", "ansix3.4", "iso646", "iso8859", "isoir100", "jisx0201", "jisx0208",
            "jisx0212", "rfc1468", "iso2022", "utf8", "unicode", "utf16", "utf32", "latin1",
            "shiftjis", "cp932", "eucjp", "cp1252", "windows1252")  # fmt: skip
_ITEMSIZE = {0: 2, 1: 2, 2: 4, 3: 1, 4: 2, 5: 1, 6: 4, 7: 4, 8: 8}  # MWF_DTP codes (Table 5-6)


def is_mfer(path: Path) -> bool:
    """Whether a file starts like an MFER file: its preamble, or a chain of valid definitions
    (byte order, frame, sampling) as ecgdatakit recognises one."""
    from ecgdatakit.parsing.parsers.mfer import MFERParser

    head = file_head(path, SNIFF_BYTES)
    return head is not None and MFERParser.can_parse(path, head)


def read_mfer(
    path: Path, name: str, warn: list[str] | None = None
) -> tuple[np.ndarray, float, list[str], list[str]]:
    """The rhythm waveform of an MFER file: signal, rate, lead names, units. Dominant-beat frames
    are not the ECG and are left out; 8-lead files get their limb leads derived later, as for any
    8-lead export. The file is walked by :func:`check_mfer` before it is decoded."""
    from ecgdatakit.parsing.parsers.mfer import MFERParser

    data = _read_bytes(path, name)  # size-checked
    if not MFERParser.can_parse(path, data[:SNIFF_BYTES]):
        raise RecordError(
            name, "not an MFER file (no MFER preamble or definitions at its start, ISO 22077-1)"
        )
    check_mfer(data, name)
    del data
    record = _decode_with(MFERParser, path, name, "MFER", [] if warn is None else warn)
    signal, rate, names, units = _physical_leads(record, name, "MFER")
    exact = set(record.raw_metadata.get("sampling_rates", []))  # type: ignore[attr-defined]
    if len(exact) == 1:  # the leads carry whole hertz; a 3 ms interval is 333.3 Hz
        rate = _rate(float(exact.pop()), "MFER", name)
    return signal, rate, names, units


def check_mfer(data: bytes, name: str) -> None:
    """Refuse an MFER file whose decoding would cost far more than its size: more than
    ``MAX_CHANNELS`` channels, definitions nested deeper than ``MAX_DEPTH``, more than
    ``MAX_FRAMES`` frames, ``MAX_CHANNEL_BLOCKS`` channel blocks, ``MAX_DEFINITIONS`` definitions
    or ``MAX_PADDING`` bytes of padding, frames declaring over ``MAX_MISSING_SAMPLES`` samples
    more than they hold, a character set not in ``CHARSETS``, and definitions that run past their
    end. Linear in the number of definitions, and so bounded by the limits: waveform data is
    skipped, not read."""
    _Walk(data, name).run()


@dataclass
class _Walk:
    """One pass over the definitions, with what ecgdatakit keeps while reading them."""

    data: bytes
    name: str
    big_endian: bool = True
    channels: int = 1
    parent: dict[str, int] = field(default_factory=dict)  # blk, seq, dtp for every channel
    child: dict[int, dict[str, int]] = field(default_factory=dict)  # and for one (MWF_ATT)
    frames: int = 0
    channel_blocks: int = 0
    definitions: int = 0
    padding: int = 0
    samples: int = 0  # decoded by ecgdatakit, over all frames
    waveform_bytes: int = 0
    _layout: tuple[list[int], list[int], list[int | None]] | None = None

    def run(self) -> None:
        self._walk(0, len(self.data), depth=0, channel=None, live=True, opened=None)

    def _error(self, message: str) -> RecordError:
        return RecordError(self.name, message)

    def _walk(
        self, pos: int, end: int, *, depth: int, channel: int | None, live: bool, opened: int | None
    ) -> int:
        """Read definitions from ``pos`` to ``end``, or to the two zero bytes that end the content
        of the definition ``opened`` at that byte with an indefinite length, and return where
        reading goes on. Definitions after MWF_END, or in an MWF_ATT for
        a channel the file does not have, are walked (ecgdatakit steps over them) but not kept."""
        if depth > MAX_DEPTH:
            raise self._error(
                f"MFER: definitions nested more than {MAX_DEPTH} deep (at byte {pos})"
            )
        data, indefinite = self.data, opened is not None
        while pos < end:
            if indefinite and pos + 1 < end and data[pos] == 0 and data[pos + 1] == 0:
                return pos + 2
            if data[pos] == 0:  # padding
                self.padding += 1
                if self.padding > MAX_PADDING:
                    raise self._error(f"MFER: more than {MAX_PADDING:,} bytes of padding")
                pos += 1
                continue
            at, tag = pos, data[pos]
            pos += 1
            att = None
            if tag == _ATT:  # the channel number, in 7-bit groups
                att, groups = 0, 0
                while True:
                    if pos >= end:
                        raise self._error(f"MFER: the channel number at byte {at + 1} is cut off")
                    if groups == 4:
                        raise self._error(
                            f"MFER: the channel number at byte {at + 1} takes more than 4 bytes"
                        )
                    att, groups, pos = (att << 7) | (data[pos] & 0x7F), groups + 1, pos + 1
                    if not data[pos - 1] & 0x80:
                        break
            if tag == _END and not indefinite:
                return end  # the rest of this content is not read
            if tag == _END:
                live = False  # ecgdatakit's skip steps over it, as over any other tag
            self.definitions += 1
            if self.definitions > MAX_DEFINITIONS:
                raise self._error(f"MFER: more than {MAX_DEFINITIONS:,} definitions")
            if pos >= end:
                raise self._error(f"MFER: definition at byte {at} has no length")
            size, pos = self._length(pos, end)
            kept = live and (att is None or att < self.channels)  # ecgdatakit warns, and skips
            inside = att if tag == _ATT else channel
            if size is None:  # indefinite: definitions up to two zero bytes
                value_start = pos
                pos = self._walk(pos, end, depth=depth + 1, channel=inside, opened=at,
                                 live=kept and tag in (_ATT, _SET))  # fmt: skip
                value_end = pos - 2
            else:
                if size > end - pos:
                    raise self._error(
                        f"MFER: definition at byte {at} declares {size:,} bytes, {end - pos:,} remain"
                    )
                value_start, value_end = pos, pos + size
                if kept and tag in (_ATT, _SET):
                    self._walk(pos, value_end, depth=depth + 1, channel=inside, opened=None,
                               live=True)  # fmt: skip
                pos = value_end
            if kept and tag in (_BLE, _TXC, _CHN, _BLK, _SEQ, _DTP):
                self._define(tag, data[value_start:value_end], channel)
            elif kept and tag == _WAV:
                self._frame(value_end - value_start, at)
        if indefinite:
            raise self._error(
                f"MFER: the definition at byte {opened} has an indefinite length and no end (00 00)"
            )
        return pos

    def _length(self, pos: int, end: int) -> tuple[int | None, int]:
        first = self.data[pos]
        if first < 0x80:
            return first, pos + 1
        if first == 0x80:
            return None, pos + 1
        count = first & 0x7F
        if count > 4:
            raise self._error(f"MFER: the length at byte {pos} takes {count} bytes (at most 4)")
        if pos + 1 + count > end:
            raise self._error(f"MFER: the length at byte {pos} is cut off")
        return int.from_bytes(self.data[pos + 1 : pos + 1 + count], "big"), pos + 1 + count

    def _define(self, tag: int, value: bytes, channel: int | None) -> None:
        """Keep what decides a frame's size, as ecgdatakit does (its errors are its own)."""
        order = "big" if self.big_endian else "little"
        if tag == _BLE:
            self.big_endian = not value or value[0] != 1
        elif tag == _TXC:
            text = value.decode("ascii", errors="replace").strip("\x00 ")
            key = "".join(c for c in text.lower() if c not in " -_")
            if not key.startswith(CHARSETS):
                raise self._error(
                    f"MFER: character set {text[:40]!r} (MWF_TXC) is not one of ISO 22077's "
                    "(ASCII, ISO 8859, JIS X 0201/0208/0212, ISO 2022, UTF-8...)"
                )
        elif tag == _CHN and channel is None and 0 < len(value) <= 4:
            self.channels = int.from_bytes(value, order)
            if self.channels == 0:
                raise self._error("MFER declares 0 channels")
            if self.channels > MAX_CHANNELS:
                raise self._error(
                    f"MFER declares {self.channels:,} channels (at most {MAX_CHANNELS} read)"
                )
            self.child = {}  # a channel count resets channel attributes
        elif tag == _CHN and channel is None and not value:
            self.channels, self.child = 1, {}
        elif tag in (_BLK, _SEQ, _DTP):
            key = {_BLK: "blk", _SEQ: "seq", _DTP: "dtp"}[tag]
            target = self.parent if channel is None else self.child.setdefault(channel, {})
            if not value:
                target.pop(key, None)
            elif tag == _DTP:
                target[key] = value[0]
            elif len(value) <= 4:
                target[key] = int.from_bytes(value, order)
        else:
            return
        self._layout = None

    def _frame(self, size: int, at: int) -> None:
        """Count the samples ecgdatakit decodes from a frame of ``size`` bytes: for each group of
        sequences, each channel's block, up to where the data ends (the last sequence whole)."""
        self.frames += 1
        if self.frames > MAX_FRAMES:
            raise self._error(f"MFER: more than {MAX_FRAMES:,} waveform frames")
        if self._layout is None:
            defs = [{**self.parent, **self.child.get(c, {})} for c in range(self.channels)]
            self._layout = (
                [d.get("blk", 1) for d in defs],
                [_ITEMSIZE.get(d.get("dtp", 0), 8) for d in defs],
                [d.get("seq") for d in defs],
            )
        blks, sizes, declared = self._layout
        if self.channels > max(size, 1) or min(blks) <= 0:
            return  # ecgdatakit refuses the frame before decoding it
        per_seq = sum(b * s for b, s in zip(blks, sizes, strict=True))
        fallback = -(-size // per_seq)
        seqs = [fallback if s is None else s for s in declared]
        order = sorted(range(self.channels), key=seqs.__getitem__)
        self.channel_blocks += self.channels
        record = per_seq
        samples = sum(blks)
        start = used = k = 0
        while k < len(order):  # channels leave as their sequences run out (MWF_SEQ per channel)
            stop = seqs[order[k]]
            if stop > start:
                self.channel_blocks += len(order) - k  # the channels still active
                if record > size + (1 << 20):
                    return  # ecgdatakit refuses the frame before decoding it
                count = min(stop - start, -(-(size - used) // record))
                if count > 0:
                    self.samples += count * samples
                    used += count * record
                start = stop
            while k < len(order) and seqs[order[k]] == stop:
                c = order[k]
                record, samples, k = record - blks[c] * sizes[c], samples - blks[c], k + 1
        self.waveform_bytes += size
        if self.channel_blocks > MAX_CHANNEL_BLOCKS:
            raise self._error(
                f"MFER: more than {MAX_CHANNEL_BLOCKS:,} channel blocks over its frames "
                f"(frame {self.frames} at byte {at} has {self.channels} channels)"
            )
        if self.samples > self.waveform_bytes + MAX_MISSING_SAMPLES:
            raise self._error(
                f"MFER frames declare {self.samples:,} samples for {self.waveform_bytes:,} "
                f"bytes of waveform data (frame {self.frames} at byte {at})"
            )
