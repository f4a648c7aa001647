"""The machine line recorded with every figure: CPU model, ISA flags, cores, library versions."""

from __future__ import annotations

import os
import platform
from functools import lru_cache
from importlib import metadata

# ISA extensions that decide which kernels ONNX Runtime and PyTorch can use
ISA_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
    "asimd",
    "asimddp",
    "i8mm",
    "sve",
    "bf16",
)
LIBRARIES = (
    "torch",
    "transformers",
    "optimum",
    "optimum-onnx",
    "onnx",
    "onnxruntime",
    "neural-compressor",
    "accelerate",
    "numpy",
)


@lru_cache(maxsize=1)
def cpu_flags() -> set[str]:
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith(("flags", "features")):
                    flags.update(line.split(":", 1)[1].split())
    except OSError:
        pass
    return flags


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def isa_preset() -> str:
    """The Optimum quantization preset that matches this CPU (Optimum names presets after the ISA)."""
    flags = cpu_flags()
    if platform.machine().lower() in ("aarch64", "arm64"):
        return "arm64"
    if "avx512_vnni" in flags:
        return "avx512_vnni"
    if "avx512f" in flags:
        return "avx512"
    return "avx2"


def hardware_tag() -> str:
    """A short name for result files: arch + best ISA, e.g. x86_64-avx512_vnni."""
    return f"{platform.machine()}-{isa_preset()}"


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def machine_info() -> dict:
    flags = cpu_flags()
    return {
        "cpu": cpu_model(),
        "arch": platform.machine(),
        "isa": [f for f in ISA_FLAGS if f in flags],
        "cores": os.cpu_count(),
        "os": f"{platform.system()} {platform.release()}",
        "libraries": library_versions(),
    }


def machine_line(info: dict | None = None) -> str:
    info = info or machine_info()
    libs = ", ".join(f"{k} {v}" for k, v in info["libraries"].items())
    return f"{info['cpu']} ({info['arch']}; {' '.join(info['isa'])}), {info['cores']} cores; {libs}"
