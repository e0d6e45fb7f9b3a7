"""The CPU label printed beside every speed and equality number."""

from hoi_edge.core.cpu import cpu_info, parse_cpuinfo

EPYC_VNNI = "model name\t: AMD EPYC\ncpu MHz\t\t: 2445.406\nflags\t\t: fpu sse avx2 avx512f avx512_vnni avx512_bf16\n"
ZEN3 = "model name\t: AMD EPYC 7B13\ncpu MHz\t\t: 2445.406\nflags\t\t: fpu sse avx2 fma\n"


def test_vnni_and_bf16_are_named():
    cpu = parse_cpuinfo(EPYC_VNNI)
    assert cpu.name == "AMD EPYC" and cpu.vnni and cpu.int8_macs_per_cycle == 64
    assert cpu.isa_label() == "AVX-512 VNNI, AVX512-BF16"
    assert cpu.describe().startswith("AMD EPYC (") and cpu.describe().endswith("; AVX-512 VNNI, AVX512-BF16)")


def test_avx2_only_is_not_vnni():
    cpu = parse_cpuinfo(ZEN3)
    assert not cpu.vnni and cpu.isa_label() == "AVX2" and cpu.int8_macs_per_cycle == 32 and cpu.mhz == 2445.406


def test_no_flags_says_unknown():
    assert parse_cpuinfo("").int8_isa == "unknown ISA"
    assert parse_cpuinfo("flags\t: fpu sse\n").int8_isa == "no AVX2"


def test_this_machine_has_a_label():
    assert cpu_info().isa_label()
