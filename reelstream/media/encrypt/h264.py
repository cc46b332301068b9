"""Just enough H.264 (ITU-T H.264 / ISO/IEC 14496-10) to find where a slice header ends.

Common Encryption keeps the NAL unit header and the slice header of every video slice
in the clear ('cbcs' requires it; CMAF and Shaka Packager do it for 'cenc' too), so a decoder can parse headers without the key. The slice header has no
length field: its size in bits follows from the SPS and PPS it refers to, so this
module reads SPS (7.3.2.1.1), PPS (7.3.2.2) and the slice header (7.3.3) up to its last
field.
"""

from __future__ import annotations

from dataclasses import dataclass


class H264Error(ValueError):
    """An SPS, PPS or slice header could not be parsed."""


def unescape(nal: bytes | memoryview, limit: int) -> tuple[bytes, list[int]]:
    """The RBSP of the first ``limit`` bytes of ``nal`` (7.4.1: emulation prevention
    bytes 0x000003 removed), and the raw positions of the removed bytes."""
    raw = bytes(nal[:limit])
    if b"\x00\x00\x03" not in raw:
        return raw, []
    out, removed, zeros = bytearray(), [], 0
    for i, b in enumerate(raw):
        if zeros >= 2 and b == 3:
            removed.append(i)
            zeros = 0
            continue
        out.append(b)
        zeros = zeros + 1 if b == 0 else 0
    return bytes(out), removed


class BitReader:
    """Big-endian bit reader with Exp-Golomb codes (9.1)."""

    def __init__(self, data: bytes) -> None:
        self.value = int.from_bytes(data, "big")
        self.total = len(data) * 8
        self.pos = 0

    def u(self, n: int) -> int:
        if n == 0:
            return 0
        if self.pos + n > self.total:
            raise H264Error("read past the end of the NAL unit")
        self.pos += n
        return (self.value >> (self.total - self.pos)) & ((1 << n) - 1)

    def flag(self) -> bool:
        return bool(self.u(1))

    def ue(self) -> int:
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > 31:
                raise H264Error("invalid Exp-Golomb code")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k & 1 else -(k // 2)


@dataclass(frozen=True)
class Sps:
    sps_id: int
    chroma_array_type: int
    log2_max_frame_num: int
    pic_order_cnt_type: int
    log2_max_poc_lsb: int
    delta_pic_order_always_zero: bool
    frame_mbs_only: bool
    separate_colour_plane: bool


@dataclass(frozen=True)
class Pps:
    pps_id: int
    sps_id: int
    entropy_coding_mode: bool
    bottom_field_pic_order_in_frame_present: bool
    num_ref_idx_l0_default: int
    num_ref_idx_l1_default: int
    weighted_pred: bool
    weighted_bipred_idc: int
    deblocking_filter_control_present: bool
    redundant_pic_cnt_present: bool


_HIGH_PROFILES = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}


def _skip_scaling_list(r: BitReader, size: int) -> None:
    last = nxt = 8
    for _ in range(size):
        if nxt != 0:
            nxt = (last + r.se() + 256) % 256
        last = nxt if nxt != 0 else last


def parse_sps(nal: bytes) -> Sps:
    """7.3.2.1.1 seq_parameter_set_data, up to frame_mbs_only_flag."""
    rbsp, _ = unescape(nal, len(nal))
    r = BitReader(rbsp[1:])
    profile = r.u(8)
    r.u(16)  # constraint flags, level_idc
    sps_id = r.ue()
    chroma_format_idc, separate = 1, False
    if profile in _HIGH_PROFILES:
        chroma_format_idc = r.ue()
        if chroma_format_idc == 3:
            separate = r.flag()
        r.ue(), r.ue()  # bit depths
        r.u(1)  # qpprime_y_zero_transform_bypass_flag
        if r.flag():  # seq_scaling_matrix_present_flag
            for i in range(8 if chroma_format_idc != 3 else 12):
                if r.flag():
                    _skip_scaling_list(r, 16 if i < 6 else 64)
    log2_max_frame_num = r.ue() + 4
    poc_type = r.ue()
    log2_max_poc_lsb, always_zero = 0, False
    if poc_type == 0:
        log2_max_poc_lsb = r.ue() + 4
    elif poc_type == 1:
        always_zero = r.flag()
        r.se(), r.se()
        for _ in range(r.ue()):
            r.se()
    r.ue()  # max_num_ref_frames
    r.u(1)  # gaps_in_frame_num_value_allowed_flag
    r.ue(), r.ue()  # picture size in macroblocks
    frame_mbs_only = r.flag()
    return Sps(sps_id, 0 if separate else chroma_format_idc, log2_max_frame_num, poc_type,
               log2_max_poc_lsb, always_zero, frame_mbs_only, separate)


def parse_pps(nal: bytes) -> Pps:
    """7.3.2.2 pic_parameter_set_rbsp, up to redundant_pic_cnt_present_flag."""
    rbsp, _ = unescape(nal, len(nal))
    r = BitReader(rbsp[1:])
    pps_id, sps_id = r.ue(), r.ue()
    entropy, bottom = r.flag(), r.flag()
    if r.ue() > 0:  # num_slice_groups_minus1
        raise H264Error("slice groups (FMO) are not supported")
    l0, l1 = r.ue() + 1, r.ue() + 1
    weighted_pred, bipred = r.flag(), r.u(2)
    r.se(), r.se(), r.se()  # pic_init_qp, pic_init_qs, chroma_qp_index_offset
    deblocking = r.flag()
    r.u(1)  # constrained_intra_pred_flag
    redundant = r.flag()
    return Pps(pps_id, sps_id, entropy, bottom, l0, l1, weighted_pred, bipred, deblocking, redundant)


class ParameterSets:
    """SPS and PPS seen so far (from avcC, then in-band)."""

    def __init__(self) -> None:
        self.sps: dict[int, Sps] = {}
        self.pps: dict[int, Pps] = {}

    def add(self, nal: bytes) -> None:
        kind = nal[0] & 0x1F
        if kind == 7:
            s = parse_sps(nal)
            self.sps[s.sps_id] = s
        elif kind == 8:
            p = parse_pps(nal)
            self.pps[p.pps_id] = p

    @classmethod
    def from_avcc(cls, avcc: bytes) -> tuple[ParameterSets, int]:
        """From an AVCDecoderConfigurationRecord (14496-15 5.3.3.1); also the NAL length size."""
        ps = cls()
        length_size = (avcc[4] & 3) + 1
        pos, n = 6, avcc[5] & 0x1F
        for _ in range(n):
            size = int.from_bytes(avcc[pos:pos + 2], "big")
            ps.add(avcc[pos + 2:pos + 2 + size])
            pos += 2 + size
        n = avcc[pos]
        pos += 1
        for _ in range(n):
            size = int.from_bytes(avcc[pos:pos + 2], "big")
            ps.add(avcc[pos + 2:pos + 2 + size])
            pos += 2 + size
        return ps, length_size

    def slice_header_size(self, nal: bytes | memoryview) -> int:
        """Bytes of the NAL unit (1-byte header included, emulation prevention bytes
        included) that hold the slice header, rounded up to a whole byte."""
        limit = min(len(nal), 512)
        while True:
            rbsp, removed = unescape(nal, limit)
            try:
                bits = _slice_header_bits(BitReader(rbsp[1:]), nal[0], self)
                break
            except H264Error:
                if limit == len(nal):
                    raise
                limit = len(nal)  # a long pred_weight_table: read the whole NAL unit
        size = 1 + (bits + 7) // 8
        for p in removed:  # ascending raw positions: each one before the end pushes it on
            if p >= size:
                break
            size += 1
        return size


def _ref_pic_list_modification(r: BitReader) -> None:
    if r.flag():
        while (idc := r.ue()) != 3:
            if idc > 5:
                raise H264Error(f"modification_of_pic_nums_idc {idc}")
            r.ue()


def _pred_weight_table(r: BitReader, chroma: int, l0: int, l1: int, b_slice: bool) -> None:
    r.ue()
    if chroma != 0:
        r.ue()
    for count in (l0, l1) if b_slice else (l0,):
        for _ in range(count):
            if r.flag():
                r.se(), r.se()
            if chroma != 0 and r.flag():
                r.se(), r.se(), r.se(), r.se()


def _slice_header_bits(r: BitReader, nal_header: int, ps: ParameterSets) -> int:
    """7.3.3 slice_header(): the number of RBSP bits it takes."""
    nal_ref_idc, nal_type = (nal_header >> 5) & 3, nal_header & 0x1F
    r.ue()  # first_mb_in_slice
    slice_type = r.ue() % 5  # 0 P, 1 B, 2 I, 3 SP, 4 SI
    pps_id = r.ue()
    if pps_id not in ps.pps or ps.pps[pps_id].sps_id not in ps.sps:
        raise H264Error(f"slice refers to unknown PPS {pps_id}")
    pps = ps.pps[pps_id]
    sps = ps.sps[pps.sps_id]
    if sps.separate_colour_plane:
        r.u(2)
    r.u(sps.log2_max_frame_num)
    field_pic = False
    if not sps.frame_mbs_only:
        field_pic = r.flag()
        if field_pic:
            r.u(1)
    if nal_type == 5:
        r.ue()  # idr_pic_id
    if sps.pic_order_cnt_type == 0:
        r.u(sps.log2_max_poc_lsb)
        if pps.bottom_field_pic_order_in_frame_present and not field_pic:
            r.se()
    if sps.pic_order_cnt_type == 1 and not sps.delta_pic_order_always_zero:
        r.se()
        if pps.bottom_field_pic_order_in_frame_present and not field_pic:
            r.se()
    if pps.redundant_pic_cnt_present:
        r.ue()
    b_slice = slice_type == 1
    if b_slice:
        r.u(1)  # direct_spatial_mv_pred_flag
    l0, l1 = pps.num_ref_idx_l0_default, pps.num_ref_idx_l1_default
    if slice_type in (0, 1, 3) and r.flag():  # num_ref_idx_active_override_flag
        l0 = r.ue() + 1
        if b_slice:
            l1 = r.ue() + 1
    if slice_type not in (2, 4):
        _ref_pic_list_modification(r)
        if b_slice:
            _ref_pic_list_modification(r)
    if (pps.weighted_pred and slice_type in (0, 3)) or (pps.weighted_bipred_idc == 1 and b_slice):
        _pred_weight_table(r, sps.chroma_array_type, l0, l1, b_slice)
    if nal_ref_idc != 0:  # dec_ref_pic_marking() 7.3.3.3
        if nal_type == 5:
            r.u(2)
        elif r.flag():
            while (op := r.ue()) != 0:
                if op in (1, 3):
                    r.ue()
                if op == 2:
                    r.ue()
                if op in (3, 6):
                    r.ue()
                if op == 4:
                    r.ue()
    if pps.entropy_coding_mode and slice_type not in (2, 4):
        r.ue()  # cabac_init_idc
    r.se()  # slice_qp_delta
    if slice_type in (3, 4):
        if slice_type == 3:
            r.u(1)
        r.se()
    if pps.deblocking_filter_control_present and r.ue() != 1:
        r.se(), r.se()
    return r.pos
