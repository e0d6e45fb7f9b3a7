"""Which CPU a number was measured on, and which INT8 instructions it has.

INT8 speed *and* INT8 arithmetic differ between CPUs: without VNNI, OpenVINO's and XNNPACK's u8 x s8
products are summed in saturating int16 pairs (``vpmaddubsw``), with VNNI in int32 (``vpdpbusd``); with
AVX512-BF16 or AMX, OpenVINO's CPU plugin runs floating-point layers in bf16 unless told otherwise. So
every speed or equality number hoi-edge prints names the ISA (:func:`isa_label`), and artifacts record it.
Reads ``/proc/cpuinfo``; elsewhere the flags are unknown and the label says so.
"""

from __future__ import annotations

import functools
import os
import platform
from dataclasses import dataclass
from pathlib import Path

#: INT8 multiply-accumulates per cycle per core by the best integer dot-product instruction the CPU has, best
#: first (one 512-bit VPDPBUSD per cycle: 64; 256-bit AVX-VNNI: 64; AVX2 VPMADDUBSW + VPMADDWD: 32).
INT8_ISAS: tuple[tuple[str, str, int], ...] = (
    ("amx_int8", "AMX-INT8", 1024), ("avx512_vnni", "AVX-512 VNNI", 64), ("avx_vnni", "AVX-VNNI", 64),
    ("avx2", "AVX2", 32),
)
#: Floating-point extensions that change what OpenVINO's CPU plugin computes by default.
REDUCED_FLOAT = (("amx_bf16", "AMX-BF16"), ("avx512_bf16", "AVX512-BF16"), ("avx512_fp16", "AVX512-FP16"))


@dataclass(frozen=True)
class CpuInfo:
    name: str
    flags: frozenset[str]
    mhz: float | None
    logical_cpus: int

    @property
    def int8_isa(self) -> str:
        """The best INT8 dot-product ISA ('AVX-512 VNNI', 'AVX2', ...), or 'unknown ISA' without flags."""
        return next((label for flag, label, _ in INT8_ISAS if flag in self.flags),
                    "unknown ISA" if not self.flags else "no AVX2")

    @property
    def int8_macs_per_cycle(self) -> int | None:
        return next((n for flag, _, n in INT8_ISAS if flag in self.flags), None)

    @property
    def vnni(self) -> bool:
        """Whether u8 x s8 products accumulate without int16 saturation (VNNI or AMX)."""
        return bool({"amx_int8", "avx512_vnni", "avx_vnni"} & self.flags)

    @property
    def reduced_float(self) -> tuple[str, ...]:
        return tuple(label for flag, label in REDUCED_FLOAT if flag in self.flags)

    def isa_label(self) -> str:
        """'AVX-512 VNNI, AVX512-BF16': what to print next to a speed or equality number."""
        return ", ".join((self.int8_isa, *self.reduced_float))

    def describe(self) -> str:
        """'AMD EPYC (2 logical CPUs; AVX-512 VNNI, AVX512-BF16)'."""
        return f"{self.name} ({self.logical_cpus} logical CPUs; {self.isa_label()})"

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "isa": self.isa_label(), "int8_isa": self.int8_isa, "vnni": self.vnni,
                "logical_cpus": self.logical_cpus}


@functools.lru_cache(maxsize=1)
def cpu_info() -> CpuInfo:
    """This machine's CPU (first processor entry of /proc/cpuinfo)."""
    return parse_cpuinfo(_read_cpuinfo())


def parse_cpuinfo(text: str) -> CpuInfo:
    name, flags, mhz = "", frozenset(), None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not name:
            name = value.strip()
        elif key == "flags" and not flags:
            flags = frozenset(value.split())
        elif key == "cpu MHz" and mhz is None:
            try:
                mhz = float(value)
            except ValueError:
                pass
    return CpuInfo(name=name or platform.processor() or platform.machine() or "unknown CPU", flags=flags, mhz=mhz,
                   logical_cpus=os.cpu_count() or 1)


def _read_cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
