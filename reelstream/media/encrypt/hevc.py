"""Just enough HEVC (ITU-T H.265 / ISO/IEC 23008-2) to find where a slice segment header
ends, and what the decoder configuration says about profile and transfer function.

Common Encryption keeps the two-byte NAL unit header and the whole slice segment header
of every VCL NAL unit in the clear (23001-7 10.2 and 10.4.2 for 'cbcs'; CMAF and Shaka
Packager do the same for 'cenc'). The header has no length field: its size follows from
the SPS and PPS it refers to, so this module reads the SPS (7.3.2.2), the PPS (7.3.2.3)
and the slice segment header (7.3.6.1) up to its ``byte_alignment()``. VPS are not
needed for that and are only passed through.

Also read here, because the manifests need them: the ``HEVCDecoderConfigurationRecord``
(14496-15 8.3.3.1) for the RFC 6381 codecs string (14496-15 Annex E.3) and the VUI
``transfer_characteristics`` (E.2.1; 16 = SMPTE ST 2084 "PQ", 18 = ARIB STD-B67 "HLG").
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reelstream.media.encrypt.h264 import BitReader, H264Error, unescape

VPS, SPS, PPS = 32, 33, 34
IDR_W_RADL, IDR_N_LP = 19, 20
BLA_W_LP, RSV_IRAP_23 = 16, 23
SLICE_B, SLICE_P, SLICE_I = 0, 1, 2
TRANSFER_PQ, TRANSFER_HLG = 16, 18


class HevcError(ValueError):
    """An HEVC parameter set, slice segment header or hvcC could not be parsed."""


def nal_type(nal: bytes | memoryview) -> int:
    """nal_unit_type from the two-byte NAL unit header (7.3.1.2)."""
    return (nal[0] >> 1) & 0x3F


def is_vcl(kind: int) -> bool:
    # 7.4.2.2 Table 7-1: 0..31 are VCL; 10..15 and 22..31 are reserved and never coded.
    return kind <= 9 or 16 <= kind <= 21


def _rbsp_reader(nal: bytes | memoryview, limit: int | None = None) -> tuple[BitReader, list[int]]:
    rbsp, removed = unescape(nal, len(nal) if limit is None else limit)
    return BitReader(rbsp[2:]), removed


# --------------------------------------------------------------------------- SPS


@dataclass(frozen=True)
class ShortTermRps:
    """A short-term reference picture set (7.3.7): delta POCs and their used flags."""

    negative: tuple[tuple[int, bool], ...]  # (DeltaPocS0, UsedByCurrPicS0)
    positive: tuple[tuple[int, bool], ...]

    @property
    def num_delta_pocs(self) -> int:
        return len(self.negative) + len(self.positive)

    @property
    def used(self) -> int:
        return sum(u for _, u in self.negative) + sum(u for _, u in self.positive)


@dataclass(frozen=True)
class Sps:
    sps_id: int
    chroma_array_type: int
    separate_colour_plane: bool
    log2_max_poc_lsb: int
    pic_size_in_ctbs: int
    short_term_rps: tuple[ShortTermRps, ...]
    long_term_ref_pics_present: bool
    lt_used_by_curr_sps: tuple[bool, ...]  # used_by_curr_pic_lt_sps_flag per lt_ref_pic_poc_lsb_sps
    temporal_mvp_enabled: bool
    sample_adaptive_offset_enabled: bool
    transfer_characteristics: int | None  # VUI, None when not signalled
    bit_depth_luma: int


def _skip_profile_tier_level(r: BitReader, max_sub_layers_minus1: int) -> None:
    """7.3.3 profile_tier_level(1, sps_max_sub_layers_minus1)."""
    r.u(8), r.u(32), r.u(32), r.u(16), r.u(8)  # general: 2+1+5, 32 compat, 48 constraint, level
    present = [(r.flag(), r.flag()) for _ in range(max_sub_layers_minus1)]
    if max_sub_layers_minus1 > 0:
        r.u(2 * (8 - max_sub_layers_minus1))
    for profile, level in present:
        if profile:
            r.u(32), r.u(32), r.u(24)  # 88 bits
        if level:
            r.u(8)


def _skip_scaling_list_data(r: BitReader) -> None:
    """7.3.4 scaling_list_data()."""
    for size_id in range(4):
        for _ in range(0, 6, 3 if size_id == 3 else 1):
            if not r.flag():  # scaling_list_pred_mode_flag
                r.ue()
                continue
            if size_id > 1:
                r.se()
            for _ in range(min(64, 1 << (4 + (size_id << 1)))):
                r.se()


def parse_st_ref_pic_set(r: BitReader, idx: int, num_sets: int, sets: list[ShortTermRps]) -> ShortTermRps:
    """7.3.7 st_ref_pic_set(stRpsIdx), with the derivation of 7.4.8 (7-61, 7-62) for sets
    predicted from another one: a later set's size depends on it."""
    if idx != 0 and r.flag():  # inter_ref_pic_set_prediction_flag
        delta_idx = r.ue() + 1 if idx == num_sets else 1
        if delta_idx > idx:
            raise HevcError(f"st_ref_pic_set {idx} predicts from set {idx - delta_idx}")
        ref = sets[idx - delta_idx]
        sign = r.u(1)
        delta_rps = (1 - 2 * sign) * (r.ue() + 1)
        used, use_delta = [], []
        for _ in range(ref.num_delta_pocs + 1):
            u = r.flag()
            used.append(u)
            use_delta.append(True if u else r.flag())
        n_neg = len(ref.negative)
        s0: list[tuple[int, bool]] = []
        s1: list[tuple[int, bool]] = []
        for j in range(len(ref.positive) - 1, -1, -1):
            d = ref.positive[j][0] + delta_rps
            if d < 0 and use_delta[n_neg + j]:
                s0.append((d, used[n_neg + j]))
        if delta_rps < 0 and use_delta[ref.num_delta_pocs]:
            s0.append((delta_rps, used[ref.num_delta_pocs]))
        for j in range(n_neg):
            d = ref.negative[j][0] + delta_rps
            if d < 0 and use_delta[j]:
                s0.append((d, used[j]))
        for j in range(n_neg - 1, -1, -1):
            d = ref.negative[j][0] + delta_rps
            if d > 0 and use_delta[j]:
                s1.append((d, used[j]))
        if delta_rps > 0 and use_delta[ref.num_delta_pocs]:
            s1.append((delta_rps, used[ref.num_delta_pocs]))
        for j in range(len(ref.positive)):
            d = ref.positive[j][0] + delta_rps
            if d > 0 and use_delta[n_neg + j]:
                s1.append((d, used[n_neg + j]))
        return ShortTermRps(tuple(s0), tuple(s1))
    num_negative, num_positive = r.ue(), r.ue()
    if num_negative > 16 or num_positive > 16:
        raise HevcError(f"st_ref_pic_set {idx}: {num_negative}+{num_positive} pictures")
    neg, poc = [], 0
    for _ in range(num_negative):
        poc -= r.ue() + 1
        neg.append((poc, r.flag()))
    pos, poc = [], 0
    for _ in range(num_positive):
        poc += r.ue() + 1
        pos.append((poc, r.flag()))
    return ShortTermRps(tuple(neg), tuple(pos))


def _vui_transfer(r: BitReader) -> int | None:
    """E.2.1 vui_parameters(), up to transfer_characteristics."""
    if r.flag() and r.u(8) == 255:  # aspect_ratio_info_present_flag, aspect_ratio_idc EXTENDED_SAR
        r.u(16), r.u(16)
    if r.flag():  # overscan_info_present_flag
        r.u(1)
    if not r.flag():  # video_signal_type_present_flag
        return None
    r.u(3), r.u(1)  # video_format, video_full_range_flag
    if not r.flag():  # colour_description_present_flag
        return None
    r.u(8)  # colour_primaries
    return r.u(8)


def parse_sps(nal: bytes | memoryview) -> Sps:
    """7.3.2.2 seq_parameter_set_rbsp(), up to the VUI's transfer_characteristics."""
    r, _ = _rbsp_reader(nal)
    r.u(4)  # sps_video_parameter_set_id
    max_sub_layers_minus1 = r.u(3)
    r.u(1)
    _skip_profile_tier_level(r, max_sub_layers_minus1)
    sps_id = r.ue()
    chroma_format_idc = r.ue()
    separate = chroma_format_idc == 3 and r.flag()
    width, height = r.ue(), r.ue()
    if r.flag():  # conformance_window_flag
        r.ue(), r.ue(), r.ue(), r.ue()
    bit_depth_luma = r.ue() + 8
    r.ue()  # bit_depth_chroma_minus8
    log2_max_poc_lsb = r.ue() + 4
    ordering_all = r.flag()
    for _ in range(0 if ordering_all else max_sub_layers_minus1, max_sub_layers_minus1 + 1):
        r.ue(), r.ue(), r.ue()
    min_cb_log2 = r.ue() + 3
    ctb_log2 = min_cb_log2 + r.ue()
    r.ue(), r.ue(), r.ue(), r.ue()  # transform block sizes, hierarchy depths
    if r.flag() and r.flag():  # scaling_list_enabled_flag, sps_scaling_list_data_present_flag
        _skip_scaling_list_data(r)
    r.u(1)  # amp_enabled_flag
    sao = r.flag()
    if r.flag():  # pcm_enabled_flag
        r.u(8)
        r.ue(), r.ue()
        r.u(1)
    num_sets = r.ue()
    if num_sets > 64:
        raise HevcError(f"num_short_term_ref_pic_sets {num_sets} > 64")
    sets: list[ShortTermRps] = []
    for i in range(num_sets):
        sets.append(parse_st_ref_pic_set(r, i, num_sets, sets))
    long_term = r.flag()
    lt_used: list[bool] = []
    if long_term:
        for _ in range(r.ue()):
            r.u(log2_max_poc_lsb)
            lt_used.append(r.flag())
    temporal_mvp = r.flag()
    r.u(1)  # strong_intra_smoothing_enabled_flag
    transfer = _vui_transfer(r) if r.flag() else None
    ctb = 1 << ctb_log2
    ctbs = -(-width // ctb) * -(-height // ctb)
    return Sps(sps_id, 0 if separate else chroma_format_idc, separate, log2_max_poc_lsb, ctbs, tuple(sets),
               long_term, tuple(lt_used), temporal_mvp, sao, transfer, bit_depth_luma)


# --------------------------------------------------------------------------- PPS


@dataclass(frozen=True)
class Pps:
    pps_id: int
    sps_id: int
    dependent_slice_segments_enabled: bool
    output_flag_present: bool
    num_extra_slice_header_bits: int
    cabac_init_present: bool
    num_ref_idx_l0_default: int
    num_ref_idx_l1_default: int
    slice_chroma_qp_offsets_present: bool
    weighted_pred: bool
    weighted_bipred: bool
    tiles_or_wpp: bool
    loop_filter_across_slices_enabled: bool
    deblocking_filter_override_enabled: bool
    pps_deblocking_filter_disabled: bool
    lists_modification_present: bool
    slice_segment_header_extension_present: bool
    chroma_qp_offset_list_enabled: bool


def parse_pps(nal: bytes | memoryview) -> Pps:
    """7.3.2.3 pic_parameter_set_rbsp(), with pps_range_extension() (7.3.2.3.2)."""
    r, _ = _rbsp_reader(nal)
    pps_id, sps_id = r.ue(), r.ue()
    dependent, output_flag, extra_bits = r.flag(), r.flag(), r.u(3)
    r.u(1)  # sign_data_hiding_enabled_flag
    cabac_init = r.flag()
    l0, l1 = r.ue() + 1, r.ue() + 1
    r.se()  # init_qp_minus26
    r.u(1)  # constrained_intra_pred_flag
    transform_skip = r.flag()
    if r.flag():  # cu_qp_delta_enabled_flag
        r.ue()
    r.se(), r.se()
    chroma_offsets = r.flag()
    weighted_pred, weighted_bipred = r.flag(), r.flag()
    r.u(1)  # transquant_bypass_enabled_flag
    tiles, wpp = r.flag(), r.flag()
    if tiles:
        columns, rows = r.ue() + 1, r.ue() + 1
        if not r.flag():  # uniform_spacing_flag
            for _ in range(columns - 1 + rows - 1):
                r.ue()
        r.u(1)
    across_slices = r.flag()
    override_enabled = disabled = False
    if r.flag():  # deblocking_filter_control_present_flag
        override_enabled, disabled = r.flag(), r.flag()
        if not disabled:
            r.se(), r.se()
    if r.flag():  # pps_scaling_list_data_present_flag
        _skip_scaling_list_data(r)
    lists_modification = r.flag()
    r.ue()  # log2_parallel_merge_level_minus2
    extension_present = r.flag()
    chroma_qp_list = False
    if r.flag():  # pps_extension_present_flag
        range_ext, multilayer, ext_3d, scc = r.flag(), r.flag(), r.flag(), r.flag()
        r.u(4)
        if multilayer or ext_3d or scc:
            raise HevcError("multilayer, 3D and screen content PPS extensions are not supported")
        if range_ext:
            if transform_skip:
                r.ue()
            r.u(1)  # cross_component_prediction_enabled_flag
            chroma_qp_list = r.flag()
    return Pps(pps_id, sps_id, dependent, output_flag, extra_bits, cabac_init, l0, l1, chroma_offsets,
               weighted_pred, weighted_bipred, tiles or wpp, across_slices, override_enabled, disabled,
               lists_modification, extension_present, chroma_qp_list)


# --------------------------------------------------------------------------- slice segment header


@dataclass
class ParameterSets:
    """SPS and PPS seen so far (from hvcC, then in-band); VPS are not needed."""

    sps: dict[int, Sps] = field(default_factory=dict)
    pps: dict[int, Pps] = field(default_factory=dict)

    def add(self, nal: bytes | memoryview) -> None:
        kind = nal_type(nal)
        if kind == SPS:
            s = parse_sps(nal)
            self.sps[s.sps_id] = s
        elif kind == PPS:
            p = parse_pps(nal)
            self.pps[p.pps_id] = p

    @classmethod
    def from_hvcc(cls, hvcc: bytes) -> tuple[ParameterSets, int]:
        """From an HEVCDecoderConfigurationRecord; also the NAL unit length size."""
        config = HvcC.parse(hvcc)
        ps = cls()
        for nal in config.nal_units:
            ps.add(nal)
        return ps, config.length_size

    def slice_header_size(self, nal: bytes | memoryview) -> int:
        """Bytes of the NAL unit (its 2-byte header and any emulation prevention bytes
        included) up to the end of the slice segment header's byte_alignment()."""
        limit = min(len(nal), 512)
        while True:
            r, removed = _rbsp_reader(nal, limit)
            try:
                bits = _slice_segment_header_bits(r, nal_type(nal), self)
                break
            except H264Error as e:  # the bit reader's error: read more, or give up
                if limit == len(nal):
                    raise HevcError(str(e)) from e
                limit = len(nal)  # a long header (entry points, weight tables): read it all
        size = 2 + bits // 8  # byte_alignment() leaves the position on a byte boundary
        for p in removed:
            if p >= size:
                break
            size += 1
        return size


def _pred_weight_table(r: BitReader, chroma: int, l0: int, l1: int, b_slice: bool) -> None:
    """7.3.6.3 pred_weight_table(). A single-layer reference picture never has the current
    picture's POC, so every luma/chroma weight flag is present."""
    r.ue()
    if chroma != 0:
        r.se()
    for count in (l0, l1) if b_slice else (l0,):
        luma = [r.flag() for _ in range(count)]
        chroma_flags = [r.flag() for _ in range(count)] if chroma != 0 else [False] * count
        for lf, cf in zip(luma, chroma_flags, strict=True):
            if lf:
                r.se(), r.se()
            if cf:
                r.se(), r.se(), r.se(), r.se()


def _ceil_log2(n: int) -> int:
    return (n - 1).bit_length() if n > 1 else 0


def _slice_segment_header_bits(r: BitReader, kind: int, ps: ParameterSets) -> int:
    """7.3.6.1 slice_segment_header(): the number of RBSP bits after the NAL unit header,
    byte_alignment() included."""
    first_in_pic = r.flag()
    if BLA_W_LP <= kind <= RSV_IRAP_23:
        r.u(1)  # no_output_of_prior_pics_flag
    pps_id = r.ue()
    if pps_id not in ps.pps or ps.pps[pps_id].sps_id not in ps.sps:
        raise HevcError(f"slice refers to unknown PPS {pps_id}")
    pps = ps.pps[pps_id]
    sps = ps.sps[pps.sps_id]
    dependent = False
    if not first_in_pic:
        if pps.dependent_slice_segments_enabled:
            dependent = r.flag()
        r.u(_ceil_log2(sps.pic_size_in_ctbs))  # slice_segment_address
    if not dependent:
        _independent_fields(r, kind, pps, sps)
    if pps.tiles_or_wpp:
        entry_points = r.ue()
        if entry_points:
            offset_len = r.ue() + 1
            if offset_len > 32:
                raise HevcError(f"offset_len_minus1 {offset_len - 1} > 31")
            r.u(offset_len * entry_points)
    if pps.slice_segment_header_extension_present:
        r.u(8 * r.ue())
    if r.u(1) != 1:  # byte_alignment(): alignment_bit_equal_to_one, then zero bits
        raise HevcError("slice segment header does not end with byte_alignment()")
    r.u(-r.pos % 8)
    return r.pos


def _independent_fields(r: BitReader, kind: int, pps: Pps, sps: Sps) -> None:
    """The part of 7.3.6.1 inside ``if(!dependent_slice_segment_flag)``."""
    r.u(pps.num_extra_slice_header_bits)
    slice_type = r.ue()
    if slice_type > 2:
        raise HevcError(f"slice_type {slice_type}")
    if pps.output_flag_present:
        r.u(1)
    if sps.separate_colour_plane:
        r.u(2)
    temporal_mvp = False
    used_curr = 0
    if kind not in (IDR_W_RADL, IDR_N_LP):
        r.u(sps.log2_max_poc_lsb)
        sets = sps.short_term_rps
        if not r.flag():  # short_term_ref_pic_set_sps_flag
            rps = parse_st_ref_pic_set(r, len(sets), len(sets), list(sets))
        else:
            rps = sets[r.u(_ceil_log2(len(sets)))] if len(sets) > 1 else sets[0]
        used_curr = rps.used
        if sps.long_term_ref_pics_present:
            candidates = sps.lt_used_by_curr_sps
            num_lt_sps = r.ue() if candidates else 0
            num_lt_pics = r.ue()
            for i in range(num_lt_sps + num_lt_pics):
                if i < num_lt_sps:
                    index = r.u(_ceil_log2(len(candidates))) if len(candidates) > 1 else 0
                    if index >= len(candidates):
                        raise HevcError(f"lt_idx_sps {index} of {len(candidates)}")
                    used_curr += candidates[index]
                else:
                    r.u(sps.log2_max_poc_lsb)
                    used_curr += r.u(1)
                if r.flag():  # delta_poc_msb_present_flag
                    r.ue()
        if sps.temporal_mvp_enabled:
            temporal_mvp = r.flag()
    sao_luma = sao_chroma = False
    if sps.sample_adaptive_offset_enabled:
        sao_luma = r.flag()
        if sps.chroma_array_type != 0:
            sao_chroma = r.flag()
    if slice_type in (SLICE_P, SLICE_B):
        _inter_fields(r, slice_type, pps, sps, temporal_mvp, used_curr)
    r.se()  # slice_qp_delta
    if pps.slice_chroma_qp_offsets_present:
        r.se(), r.se()
    if pps.chroma_qp_offset_list_enabled:
        r.u(1)
    override = pps.deblocking_filter_override_enabled and r.flag()
    disabled = pps.pps_deblocking_filter_disabled
    if override:
        disabled = r.flag()
        if not disabled:
            r.se(), r.se()
    if pps.loop_filter_across_slices_enabled and (sao_luma or sao_chroma or not disabled):
        r.u(1)


def _inter_fields(r: BitReader, slice_type: int, pps: Pps, sps: Sps, temporal_mvp: bool,
                  used_curr: int) -> None:
    b_slice = slice_type == SLICE_B
    l0, l1 = pps.num_ref_idx_l0_default, pps.num_ref_idx_l1_default
    if r.flag():  # num_ref_idx_active_override_flag
        l0 = r.ue() + 1
        if b_slice:
            l1 = r.ue() + 1
    if pps.lists_modification_present and used_curr > 1:  # 7.3.6.2 ref_pic_lists_modification()
        bits = _ceil_log2(used_curr)
        if r.flag():
            r.u(bits * l0)
        if b_slice and r.flag():
            r.u(bits * l1)
    if b_slice:
        r.u(1)  # mvd_l1_zero_flag
    if pps.cabac_init_present:
        r.u(1)
    if temporal_mvp:
        from_l0 = r.flag() if b_slice else True
        if (from_l0 and l0 > 1) or (not from_l0 and l1 > 1):
            r.ue()  # collocated_ref_idx
    if (pps.weighted_pred and slice_type == SLICE_P) or (pps.weighted_bipred and b_slice):
        _pred_weight_table(r, sps.chroma_array_type, l0, l1 if b_slice else 0, b_slice)
    r.ue()  # five_minus_max_num_merge_cand


# --------------------------------------------------------------------------- hvcC


@dataclass(frozen=True)
class HvcC:
    """14496-15 8.3.3.1 HEVCDecoderConfigurationRecord (the fields ReelStream uses)."""

    profile_space: int
    tier: int
    profile_idc: int
    compatibility: int  # general_profile_compatibility_flags, flag j at bit (31 - j)
    constraints: bytes  # general_constraint_indicator_flags, 6 bytes
    level_idc: int
    length_size: int
    nal_units: tuple[bytes, ...]  # VPS, SPS, PPS, SEI arrays in order

    @classmethod
    def parse(cls, data: bytes) -> HvcC:
        if len(data) < 23:
            raise HevcError(f"hvcC of {len(data)} bytes is shorter than its 23 fixed bytes")
        b1 = data[1]
        nal_units: list[bytes] = []
        pos, arrays = 23, data[22]
        try:
            for _ in range(arrays):
                count = int.from_bytes(data[pos + 1:pos + 3], "big")
                pos += 3
                for _ in range(count):
                    size = int.from_bytes(data[pos:pos + 2], "big")
                    if pos + 2 + size > len(data):
                        raise HevcError("a NAL unit runs past the end of the hvcC")
                    nal_units.append(bytes(data[pos + 2:pos + 2 + size]))
                    pos += 2 + size
        except IndexError as e:
            raise HevcError("hvcC arrays are truncated") from e
        return cls(b1 >> 6, (b1 >> 5) & 1, b1 & 0x1F, int.from_bytes(data[2:6], "big"), bytes(data[6:12]),
                   data[12], (data[21] & 3) + 1, tuple(nal_units))

    def codecs(self, sample_entry: str = "hvc1") -> str:
        """RFC 6381 codecs parameter, 14496-15 E.3: ``hvc1.2.4.L150.B0``."""
        space = ("", "A", "B", "C")[self.profile_space]
        reversed_flags = int(f"{self.compatibility:032b}"[::-1], 2)
        tier = "H" if self.tier else "L"
        constraints = self.constraints.rstrip(b"\x00")
        parts = [sample_entry, f"{space}{self.profile_idc}", f"{reversed_flags:X}", f"{tier}{self.level_idc}"]
        return ".".join(parts + [f"{b:X}" for b in constraints])

    def transfer_characteristics(self) -> int | None:
        for nal in self.nal_units:
            if nal and nal_type(nal) == SPS:
                return parse_sps(nal).transfer_characteristics
        return None
