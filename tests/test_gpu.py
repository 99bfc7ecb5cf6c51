"""Device detection (edgeser.gpu): fake file-system roots in tmp_path and a fake ``run`` stand in
for nvidia-smi, Jetson's device tree and release file, CUDA's version files and TensorRT's
header. The Python-environment probes (pip metadata, ``import tensorrt``) are stubbed per test, so
the results do not depend on what this machine has installed."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from importlib import metadata
from pathlib import Path

import pytest

from edgeser import gpu
from edgeser.gpu import GpuInfo, local_gpu_info
from fakes import FakeRun, write  # noqa: E402

H100_SMI = "NVIDIA H100 80GB HBM3, 9.0, 550.54.15\n"
ORIN_MODEL = "NVIDIA Jetson AGX Orin Developer Kit\x00"
TEGRA_RELEASE = "# R36 (release), REVISION: 4.0, GCID: 37537400, BOARD: generic, EABI: aarch64, DATE: Fri Sep 13 04:36:44 UTC 2024\n"  # noqa: E501
TRT10_ENTERPRISE_HEADER = """\
#ifndef NV_INFER_VERSION_H
#define NV_INFER_VERSION_H
#define TRT_MAJOR_ENTERPRISE 10
#define TRT_MINOR_ENTERPRISE 7
#define TRT_PATCH_ENTERPRISE 0
#define TRT_BUILD_ENTERPRISE 23
#define NV_TENSORRT_MAJOR TRT_MAJOR_ENTERPRISE //!< TensorRT major version.
#define NV_TENSORRT_MINOR TRT_MINOR_ENTERPRISE //!< TensorRT minor version.
#define NV_TENSORRT_PATCH TRT_PATCH_ENTERPRISE //!< TensorRT patch version.
#define NV_TENSORRT_BUILD TRT_BUILD_ENTERPRISE //!< TensorRT build number.
#endif
"""
TRT_PLAIN_HEADER = """\
#define NV_TENSORRT_MAJOR 10 //!< TensorRT major version.
#define NV_TENSORRT_MINOR 3 //!< TensorRT minor version.
#define NV_TENSORRT_PATCH 0 //!< TensorRT patch version.
#define NV_TENSORRT_BUILD 30 //!< TensorRT build number.
"""


@pytest.fixture(autouse=True)
def no_python_probes(monkeypatch):
    """This machine's pip packages must not leak into fake devices."""
    monkeypatch.setattr(gpu, "_python_tensorrt_version", lambda: None)
    monkeypatch.setattr(gpu, "_python_cuda_version", lambda: None)


NO_SMI = FakeRun(raises=FileNotFoundError(2, "No such file or directory", "nvidia-smi"))


def dgpu_root(root: Path) -> Path:
    write(root, "usr/local/cuda/version.json",
          json.dumps({"cuda": {"name": "CUDA SDK", "version": "12.6.68"}}))
    write(root, "usr/include/x86_64-linux-gnu/NvInferVersion.h", TRT10_ENTERPRISE_HEADER)
    return root


def orin_root(root: Path) -> Path:
    write(root, "proc/device-tree/model", ORIN_MODEL)
    write(root, "etc/nv_tegra_release", TEGRA_RELEASE)
    write(root, "usr/local/cuda/version.json", json.dumps({"cuda": {"version": "12.6.68"}}))
    write(root, "usr/include/aarch64-linux-gnu/NvInferVersion.h", TRT_PLAIN_HEADER)
    return root


# ---------------------------------------------------------------- dGPU through nvidia-smi


def test_dgpu_from_nvidia_smi_cuda_json_and_the_tensorrt_10_header(tmp_path):
    run = FakeRun(H100_SMI)
    info = local_gpu_info(dgpu_root(tmp_path), run=run)
    assert info == GpuInfo(name="NVIDIA H100 80GB HBM3", compute_capability="9.0", cuda="12.6.68",
                           tensorrt="10.7.0", jetson_model=None)
    assert info.device_name == "NVIDIA H100 80GB HBM3" and info.has_gpu
    (args, kwargs), = run.calls
    assert args == ["nvidia-smi", "--query-gpu=name,compute_cap,driver_version",
                    "--format=csv,noheader"]
    assert kwargs["timeout"] > 0 and kwargs["check"] is False


def test_the_first_of_several_gpus_is_described(tmp_path):
    run = FakeRun("NVIDIA A100-SXM4-40GB, 8.0, 535.1\nNVIDIA A100-SXM4-40GB, 8.0, 535.1\n")
    info = local_gpu_info(tmp_path, run=run)
    assert (info.name, info.compute_capability) == ("NVIDIA A100-SXM4-40GB", "8.0")


def test_an_older_driver_without_compute_cap_gives_none_for_it(tmp_path):
    info = local_gpu_info(tmp_path, run=FakeRun("Tesla T4, [N/A], 450.80.02\n"))
    assert (info.name, info.compute_capability) == ("Tesla T4", None)


@pytest.mark.parametrize("run", [
    NO_SMI,
    FakeRun(raises=PermissionError(13, "Permission denied")),
    FakeRun(raises=subprocess.TimeoutExpired("nvidia-smi", 15)),
    FakeRun("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n", 9),
    FakeRun(""),
], ids=["absent", "not-executable", "hangs", "driver-failure", "no-output"])
def test_a_missing_or_failing_nvidia_smi_means_no_gpu(tmp_path, run):
    info = local_gpu_info(tmp_path, run=run)
    assert (info.name, info.compute_capability) == (None, None)
    assert not info.has_gpu


def test_cuda_from_the_older_version_txt(tmp_path):
    write(tmp_path, "usr/local/cuda/version.txt", "CUDA Version 10.2.89\n")
    assert local_gpu_info(tmp_path, run=NO_SMI).cuda == "10.2.89"


def test_a_corrupt_version_json_falls_back_to_version_txt(tmp_path):
    write(tmp_path, "usr/local/cuda/version.json", "{not json")
    write(tmp_path, "usr/local/cuda/version.txt", "CUDA Version 11.4.315\n")
    assert local_gpu_info(tmp_path, run=NO_SMI).cuda == "11.4.315"


# ---------------------------------------------------------------- Jetson


def test_jetson_orin_from_device_tree_release_cuda_and_header(tmp_path):
    info = local_gpu_info(orin_root(tmp_path), run=NO_SMI)
    assert info == GpuInfo(name=None, compute_capability="8.7", cuda="12.6.68", tensorrt="10.3.0",
                           jetson_model="NVIDIA Jetson AGX Orin Developer Kit")
    assert info.device_name == "NVIDIA Jetson AGX Orin Developer Kit"  # NUL stripped
    assert info.has_gpu


def test_jetson_with_nvidia_smi_is_keyed_by_the_board_not_nvgpu(tmp_path):
    info = local_gpu_info(orin_root(tmp_path), run=FakeRun("Orin (nvgpu), [N/A], 540.4.0\n"))
    assert info.name == "Orin (nvgpu)"
    assert info.compute_capability == "8.7"
    assert info.device_name == "NVIDIA Jetson AGX Orin Developer Kit"


@pytest.mark.parametrize("model,cc", [
    ("NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super", "8.7"),
    ("NVIDIA Jetson Xavier NX Developer Kit", "7.2"),
    ("NVIDIA Jetson Nano Developer Kit", "5.3"),
    ("Some Tegra board", None),  # a model that does not say Jetson (and no release file)
])
def test_jetson_compute_capability_by_module(tmp_path, model, cc):
    write(tmp_path, "proc/device-tree/model", model + "\x00")
    info = local_gpu_info(tmp_path, run=NO_SMI)
    assert info.compute_capability == cc
    assert (info.jetson_model is not None) == (cc is not None)


def test_jetson_known_only_by_its_tegra_release(tmp_path):
    write(tmp_path, "etc/nv_tegra_release", TEGRA_RELEASE)
    info = local_gpu_info(tmp_path, run=NO_SMI)
    assert info.jetson_model == "NVIDIA Jetson (L4T R36.4.0)"
    assert info.has_gpu


def test_another_arm_board_is_not_a_jetson(tmp_path):
    write(tmp_path, "proc/device-tree/model", "Raspberry Pi 4 Model B Rev 1.4\x00")
    info = local_gpu_info(tmp_path, run=NO_SMI)
    assert info.jetson_model is None and not info.has_gpu


# ---------------------------------------------------------------- nothing at all; Python probes


def test_a_machine_with_nothing_gives_all_none(tmp_path):
    info = local_gpu_info(tmp_path, run=NO_SMI)
    assert info == GpuInfo(None, None, None, None, None)
    assert not info.has_gpu
    assert info.describe() == "no TensorRT, no known CUDA and no NVIDIA GPU"


def test_the_python_tensorrt_version_wins_over_the_header(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu, "_python_tensorrt_version", lambda: "10.8.0.43")
    monkeypatch.setattr(gpu, "_python_cuda_version", lambda: "12.8.90")
    info = local_gpu_info(tmp_path, run=FakeRun(H100_SMI))
    assert (info.tensorrt, info.cuda) == ("10.8.0.43", "12.8.90")
    assert local_gpu_info(dgpu_root(tmp_path), run=FakeRun(H100_SMI)).cuda == "12.6.68"


def _no_distributions(name):
    raise metadata.PackageNotFoundError(name)


def test_tensorrt_version_from_pip_metadata(monkeypatch):
    monkeypatch.undo()  # the real probe, with metadata faked
    monkeypatch.setattr(metadata, "version",
                        lambda name: "10.3.0" if name == "tensorrt" else _no_distributions(name))
    assert gpu._python_tensorrt_version() == "10.3.0"


def test_tensorrt_version_from_the_module_when_apt_installed(monkeypatch):
    """Jetson's python3-libnvinfer has no pip metadata: the module's __version__ is used, and
    it is imported inside the probe only."""
    monkeypatch.undo()
    monkeypatch.setattr(metadata, "version", _no_distributions)
    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__="8.6.2.3"))
    assert gpu._python_tensorrt_version() == "8.6.2.3"
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import fails
    assert gpu._python_tensorrt_version() is None


def test_gpu_and_engines_modules_import_no_heavy_packages():
    """Nor the bundle package: the manifest's validation imports edgeser.engines' record."""
    code = ("import sys, edgeser.gpu, edgeser.engines; "
            "print(sorted({'torch', 'transformers', 'onnx', 'tensorrt', 'onnxruntime', "
            "'edgeser.bundle', 'edgeser.inference'} & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
