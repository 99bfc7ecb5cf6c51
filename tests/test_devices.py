"""Device profiles (edgeser.devices): fake Jetson file-system roots in tmp_path and a fake ``run``
for ``nvpmodel -q``; provider lists are passed as ``available=`` so nothing depends on this
machine's onnxruntime, except the last tests, which use it on purpose."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from edgeser.devices import (
    DEVICES,
    Device,
    JetsonInfo,
    default_device,
    detect_jetson,
    resolve_device,
)
from edgeser.errors import DeviceError, EdgeserError
from fakes import FakeRun, write  # noqa: E402

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TRT = "TensorrtExecutionProvider"
ALL = [TRT, CUDA, CPU]

ORIN_NANO_RELEASE = ("# R36 (release), REVISION: 3.0, GCID: 36191598, BOARD: generic, EABI: "
                     "aarch64, DATE: Mon May  6 17:34:21 UTC 2024\n"
                     "# KERNEL_VARIANT: oot\nTARGET_USERSPACE_LIB_DIR=nvidia\n")
ORIN_NANO_CONF = """\
< PARAM TYPE=FILE NAME=CPU_ONLINE >
CORE_0 /sys/devices/system/cpu/cpu0/online
< POWER_MODEL ID=0 NAME=15W >
CPU_ONLINE CORE_0 1
< POWER_MODEL ID=1 NAME=7W >
CPU_ONLINE CORE_0 1
< POWER_MODEL ID=2 NAME=MAXN_SUPER >
CPU_ONLINE CORE_0 1
< PM_CONFIG DEFAULT=0 >
"""


NO_NVPMODEL = FakeRun(raises=FileNotFoundError(2, "No such file or directory", "nvpmodel"))


def cpus(root: Path, cur_khz: list[int], max_khz: list[int], offline: tuple[int, ...] = ()):
    for i, (cur, top) in enumerate(zip(cur_khz, max_khz)):
        write(root, f"sys/devices/system/cpu/cpu{i}/cpufreq/scaling_cur_freq", f"{cur}\n")
        write(root, f"sys/devices/system/cpu/cpu{i}/cpufreq/scaling_max_freq", f"{top}\n")
        if i:  # cpu0 has no online file
            write(root, f"sys/devices/system/cpu/cpu{i}/online", "0\n" if i in offline else "1\n")
    write(root, "sys/devices/system/cpu/online", "0-5\n")  # not a cpuN directory


def orin_nano(root: Path) -> Path:
    write(root, "etc/nv_tegra_release", ORIN_NANO_RELEASE)
    write(root, "proc/device-tree/model", "NVIDIA Jetson Orin Nano Developer Kit\x00")
    write(root, "proc/device-tree/compatible",
          "nvidia,p3768-0000+p3767-0005\x00nvidia,p3767-0005\x00nvidia,tegra234\x00")
    write(root, "etc/nvpmodel.conf", ORIN_NANO_CONF)
    write(root, "var/lib/nvpmodel/status", "pmode:0001 fmode:quiet\n")
    cpus(root, [729600, 729600, 1510400, 1510400, 729600, 1113600], [1510400] * 6)
    write(root, "sys/class/devfreq/17000000.ga10b/cur_freq", "305999999\n")
    write(root, "sys/class/devfreq/17000000.ga10b/max_freq", "624750000\n")
    write(root, "sys/class/devfreq/3d00000.nvdla/cur_freq", "1\n")  # not the GPU
    return root


def xavier_nx(root: Path) -> Path:
    """Xavier NX in a 2-core mode: cores 2-5 offline, gv11b devfreq, no device-tree model."""
    write(root, "etc/nv_tegra_release", "# R35 (release), REVISION: 4.1, GCID: 33958178\n")
    write(root, "proc/device-tree/compatible",
          "nvidia,p3509-0000+p3668-0001\x00nvidia,tegra194\x00")
    write(root, "etc/nvpmodel.conf", "< POWER_MODEL ID=8 NAME=MODE_20W_6CORE >\n"
                                     "< POWER_MODEL ID=5 NAME=MODE_10W_DESKTOP >\n")
    write(root, "var/lib/nvpmodel/status", "pmode:0005 fmode:default\n")
    cpus(root, [1190400] * 6, [1190400] * 6, offline=(2, 3, 4, 5))
    write(root, "sys/class/devfreq/17000000.gv11b/cur_freq", "510000000\n")
    write(root, "sys/class/devfreq/17000000.gv11b/max_freq", "803250000\n")
    return root


def jetson_nano(root: Path) -> Path:
    """Original Nano (L4T R32): known by its device tree only, GPU devfreq 57000000.gpu."""
    write(root, "proc/device-tree/model", "NVIDIA Jetson Nano Developer Kit\x00")
    write(root, "proc/device-tree/compatible",
          "nvidia,p3449-0000-b00+p3448-0002-b00\x00nvidia,jetson-nano\x00nvidia,tegra210\x00")
    cpus(root, [1479000] * 4, [1479000] * 4)
    write(root, "sys/class/devfreq/57000000.gpu/cur_freq", "921600000\n")
    write(root, "sys/class/devfreq/57000000.gpu/max_freq", "921600000\n")
    return root


# ---------------------------------------------------------------- detect_jetson


def test_orin_nano_from_its_files(tmp_path):
    info = detect_jetson(orin_nano(tmp_path), run=NO_NVPMODEL)
    assert info == JetsonInfo(
        model="NVIDIA Jetson Orin Nano Developer Kit", soc="tegra234", l4t_release="R36.3.0",
        power_mode="7W (1)",
        cpu_freq_khz=(729600, 729600, 1510400, 1510400, 729600, 1113600),
        cpu_max_freq_khz=(1510400,) * 6, gpu_freq_hz=305999999, gpu_max_freq_hz=624750000)
    assert info.describe() == ("NVIDIA Jetson Orin Nano Developer Kit, L4T R36.3.0, power mode "
                               "7W (1), CPU 730-1510 MHz x6 (max 1510 MHz), GPU 306 MHz "
                               "(max 625 MHz)")


def test_nvpmodel_query_wins_over_the_status_file(tmp_path):
    run = FakeRun("NV Power Mode: 15W\n0\n")
    info = detect_jetson(orin_nano(tmp_path), run=run)
    assert info.power_mode == "15W (0)"
    (args, kwargs), = run.calls
    assert args == ["nvpmodel", "-q"]
    assert kwargs["timeout"] == 5 and kwargs["check"] is False


def test_nvpmodel_warnings_before_the_mode_and_a_missing_id(tmp_path):
    run = FakeRun("NVPM WARN: fan mode is not set!\nNV Power Mode: MAXN_SUPER\n2\n")
    assert detect_jetson(orin_nano(tmp_path), run=run).power_mode == "MAXN_SUPER (2)"
    run = FakeRun("NV Power Mode: MAXN\n")
    assert detect_jetson(orin_nano(tmp_path), run=run).power_mode == "MAXN"


@pytest.mark.parametrize("run", [
    NO_NVPMODEL,
    FakeRun(raises=subprocess.TimeoutExpired("nvpmodel", 5)),
    FakeRun(raises=PermissionError(13, "Permission denied")),
    FakeRun("NVPM ERROR: failed to read PARAM\n", returncode=255),
    FakeRun("something else entirely\n"),
], ids=["absent", "hangs", "not-executable", "fails", "unparsable"])
def test_a_missing_or_failing_nvpmodel_falls_back_to_the_status_file(tmp_path, run):
    assert detect_jetson(orin_nano(tmp_path), run=run).power_mode == "7W (1)"


def test_a_mode_id_without_a_name_in_the_conf(tmp_path):
    root = orin_nano(tmp_path)
    write(root, "var/lib/nvpmodel/status", "pmode:0009 fmode:quiet\n")
    assert detect_jetson(root, run=NO_NVPMODEL).power_mode == "mode 9"
    (root / "etc" / "nvpmodel.conf").unlink()
    write(root, "var/lib/nvpmodel/status", "pmode:0002\n")
    assert detect_jetson(root, run=NO_NVPMODEL).power_mode == "mode 2"


def test_xavier_nx_without_a_model_and_with_offline_cores(tmp_path):
    info = detect_jetson(xavier_nx(tmp_path), run=NO_NVPMODEL)
    assert info.model == "NVIDIA Jetson (tegra194)"
    assert (info.soc, info.l4t_release) == ("tegra194", "R35.4.1")
    assert info.power_mode == "MODE_10W_DESKTOP (5)"
    assert info.cpu_freq_khz == (1190400, 1190400)  # cores 2-5 are offline
    assert (info.gpu_freq_hz, info.gpu_max_freq_hz) == (510000000, 803250000)
    assert "CPU 1190 MHz x2 (max 1190 MHz)" in info.describe()


def test_jetson_nano_known_by_its_device_tree_alone(tmp_path):
    info = detect_jetson(jetson_nano(tmp_path), run=NO_NVPMODEL)
    assert (info.model, info.soc, info.l4t_release) == (
        "NVIDIA Jetson Nano Developer Kit", "tegra210", None)
    assert info.power_mode is None
    assert (info.gpu_freq_hz, len(info.cpu_freq_khz)) == (921600000, 4)
    assert "L4T unknown, power mode unknown" in info.describe()


def test_a_release_file_alone_makes_a_jetson(tmp_path):
    write(tmp_path, "etc/nv_tegra_release", "# R32 (release), REVISION: 7.1, GCID: 29818004\n")
    info = detect_jetson(tmp_path, run=NO_NVPMODEL)
    assert info == JetsonInfo(model="NVIDIA Jetson", l4t_release="R32.7.1")
    assert info.describe() == ("NVIDIA Jetson, L4T R32.7.1, power mode unknown, CPU clock "
                               "unknown, GPU clock unknown")


def test_a_plain_x86_root_is_not_a_jetson_and_runs_nothing(tmp_path):
    run = FakeRun("NV Power Mode: 15W\n0\n")
    assert detect_jetson(tmp_path, run=run) is None
    assert run.calls == []


def test_other_arm_boards_are_not_jetsons(tmp_path):
    write(tmp_path, "proc/device-tree/model", "Raspberry Pi 4 Model B Rev 1.4\x00")
    write(tmp_path, "proc/device-tree/compatible", "raspberrypi,4-model-b\x00brcm,bcm2711\x00")
    assert detect_jetson(tmp_path, run=NO_NVPMODEL) is None


def test_garbage_and_unreadable_files_give_none_fields(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "nv_tegra_release").write_bytes(b"\xff\xfe\x00junk")
    (tmp_path / "proc" / "device-tree" / "model").mkdir(parents=True)  # a directory: unreadable
    write(tmp_path, "proc/device-tree/compatible", "\x00\x00")
    write(tmp_path, "etc/nvpmodel.conf", "< POWER_MODEL ID=x NAME= >")
    write(tmp_path, "var/lib/nvpmodel/status", "pmode:abc\n")
    write(tmp_path, "sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq", "n/a\n")
    (tmp_path / "sys/devices/system/cpu/cpu1/cpufreq/scaling_cur_freq").mkdir(parents=True)
    write(tmp_path, "sys/devices/system/cpu/cpu2/cpufreq/scaling_cur_freq", "-5\n")
    write(tmp_path, "sys/class/devfreq/17000000.ga10b/cur_freq", "\n")
    write(tmp_path, "sys/class/devfreq/17000000.ga10b/max_freq", "lots\n")
    info = detect_jetson(tmp_path, run=FakeRun(b"\xff\xfe not text"))
    assert info == JetsonInfo(model="NVIDIA Jetson")
    assert info.describe().startswith("NVIDIA Jetson, L4T unknown, power mode unknown")


def test_a_devfreq_directory_that_is_a_file_is_ignored(tmp_path):
    root = orin_nano(tmp_path)
    write(root, "sys/class/devfreq/17000000.gpu", "not a directory")
    info = detect_jetson(root, run=NO_NVPMODEL)
    assert info.gpu_freq_hz == 305999999


# ---------------------------------------------------------------- profiles


def test_cpu_profile():
    device = resolve_device("cpu", available=[CPU])
    assert device == Device(requested="cpu", name="cpu", providers=(CPU,),
                            provider_options=({},), fallback=None, jetson=None)
    assert device.label() == "cpu (CPUExecutionProvider)"


def test_cuda_profile():
    device = resolve_device("cuda", available=[CUDA, CPU])
    assert device.providers == (CUDA, CPU)
    assert device.provider_options == ({"device_id": 0}, {})
    assert device.label() == "cuda (CUDAExecutionProvider, CPUExecutionProvider)"


def test_tensorrt_profile_and_its_options(tmp_path, monkeypatch):
    """The session loads an engine's context model (edgeser.engines chooses it): TensorRT gets
    no engine cache and no build options, so it never builds an engine of its own."""
    monkeypatch.setenv("EDGESER_HOME", str(tmp_path / "home"))
    device = resolve_device("tensorrt", available=ALL)
    assert device.providers == (TRT, CUDA, CPU)
    assert device.provider_options == ({"device_id": 0}, {"device_id": 0}, {})
    assert not (tmp_path / "home").exists()  # no cache directory made
    assert device.label() == ("tensorrt (TensorrtExecutionProvider, CUDAExecutionProvider, "
                              "CPUExecutionProvider)")


def test_partial_availability_drops_providers_and_keeps_options_aligned():
    device = resolve_device("tensorrt", available=[TRT, CPU])
    assert device.providers == (TRT, CPU)
    assert device.provider_options == ({"device_id": 0}, {})
    assert device.fallback is None
    # CPU is built into every onnxruntime, even where a provider list leaves it out.
    assert resolve_device("cuda", available=[CUDA]).providers == (CUDA, CPU)


def test_jetson_profile_on_an_orin_nano(tmp_path):
    root = orin_nano(tmp_path / "root")
    device = resolve_device("jetson", available=ALL, root=root, run=NO_NVPMODEL)
    assert device.name == "jetson" and device.providers == (TRT, CUDA, CPU)
    assert device.provider_options[0] == {"device_id": 0}
    assert device.jetson.model == "NVIDIA Jetson Orin Nano Developer Kit"
    assert device.label().startswith("jetson (TensorrtExecutionProvider, ")


def test_jetson_info_rides_along_with_other_profiles_on_a_jetson(tmp_path):
    device = resolve_device("cpu", available=[CPU], root=orin_nano(tmp_path), run=NO_NVPMODEL)
    assert device.name == "cpu" and device.jetson.soc == "tegra234"


def test_session_providers_pairs_copies():
    device = resolve_device("cuda", available=[CUDA, CPU])
    pairs = device.session_providers()
    assert pairs == [(CUDA, {"device_id": 0}), (CPU, {})]
    pairs[0][1]["device_id"] = 7
    assert device.provider_options[0] == {"device_id": 0}
    assert len({device}) == 1  # hashable despite the dicts


# ---------------------------------------------------------------- refusals


@pytest.mark.parametrize("name,provider,fix", [
    ("cuda", CUDA, "install onnxruntime-gpu"),
    ("tensorrt", TRT, "install onnxruntime-gpu and TensorRT"),
])
def test_a_missing_provider_is_refused_in_one_sentence(tmp_path, name, provider, fix):
    with pytest.raises(DeviceError) as caught:
        resolve_device(name, available=[CPU], root=tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{name} needs ONNX Runtime's {provider}, which this onnxruntime (")
    assert "providers: CPUExecutionProvider) lacks" in message
    assert fix in message and "--fallback" in message
    assert message.endswith(".") and message.count(". ") == 0 and "\n" not in message
    assert isinstance(caught.value, EdgeserError)


def test_jetson_on_x86_is_refused(tmp_path):
    with pytest.raises(DeviceError, match=r"no Jetson detected \(no /etc/nv_tegra_release or "
                                          r"NVIDIA Jetson device tree\)"):
        resolve_device("jetson", available=ALL, root=tmp_path)
    # Even where TensorRT is missing too, the missing board is what is named.
    with pytest.raises(DeviceError, match="no Jetson detected"):
        resolve_device("jetson", available=[CPU], root=tmp_path)


def test_a_jetson_with_the_cpu_only_wheel_is_refused_for_jetson(tmp_path):
    with pytest.raises(DeviceError, match="JetPack build of onnxruntime-gpu"):
        resolve_device("jetson", available=[CPU], root=orin_nano(tmp_path), run=NO_NVPMODEL)


@pytest.mark.parametrize("name", ["gpu", "", "trt", "cuda:1"])
def test_unknown_devices_are_refused_with_the_list(name):
    with pytest.raises(DeviceError) as caught:
        resolve_device(name, available=ALL)
    assert all(d in str(caught.value) for d in DEVICES)


def test_names_are_case_and_space_insensitive():
    assert resolve_device(" CUDA ", available=[CUDA, CPU]).name == "cuda"


# ---------------------------------------------------------------- fallback


@pytest.mark.parametrize("requested,available,jetson,runs", [
    ("tensorrt", [CUDA, CPU], False, "cuda"),
    ("tensorrt", [CPU], False, "cpu"),
    ("cuda", [TRT, CPU], False, "cpu"),  # fallback never walks up
    ("jetson", ALL, False, "tensorrt"),
    ("jetson", [CUDA, CPU], False, "cuda"),
    ("jetson", [CPU], False, "cpu"),
    ("jetson", [CUDA, CPU], True, "cuda"),
])
def test_fallback_walks_down_the_chain(tmp_path, requested, available, jetson, runs):
    root = orin_nano(tmp_path / "root") if jetson else tmp_path / "root"
    device = resolve_device(requested, fallback=True, available=available, root=root,
                            run=NO_NVPMODEL)
    assert device.name == runs and device.requested == requested
    assert device.fallback.startswith(f"{requested} was asked for but ")
    assert device.fallback.endswith(f"; running on {runs} ({', '.join(device.providers)})")
    assert device.label().endswith(f" [fallback: {requested} requested]")
    assert device.providers[-1] == CPU
    assert len(device.providers) == len(device.provider_options)


def test_fallback_sentences_name_what_is_missing(tmp_path):
    device = resolve_device("tensorrt", fallback=True, available=[CPU], root=tmp_path)
    assert device.fallback == ("tensorrt was asked for but ONNX Runtime here has no "
                               "TensorrtExecutionProvider; running on cpu (CPUExecutionProvider)")
    device = resolve_device("jetson", fallback=True, available=[CPU], root=tmp_path)
    assert device.fallback == ("jetson was asked for but no Jetson detected (no "
                               "/etc/nv_tegra_release or NVIDIA Jetson device tree); running on "
                               "cpu (CPUExecutionProvider)")
    assert device.label() == "cpu (CPUExecutionProvider) [fallback: jetson requested]"


def test_fallback_is_quiet_when_the_request_runs():
    device = resolve_device("tensorrt", fallback=True, available=ALL)
    assert device.name == "tensorrt" and device.fallback is None
    assert "[fallback" not in device.label()


# ---------------------------------------------------------------- auto


def test_default_device():
    jetson = JetsonInfo(model="NVIDIA Jetson")
    assert default_device([CPU], jetson) == "jetson"
    assert default_device(ALL, None) == "cuda"
    assert default_device([CPU], None) == "cpu"
    assert default_device([TRT, CPU], None) == "cpu"


@pytest.mark.parametrize("requested", [None, "auto", "AUTO"])
def test_auto_picks_jetson_cuda_or_cpu(tmp_path, requested):
    on_jetson = resolve_device(requested, available=ALL, root=orin_nano(tmp_path / "j"),
                               run=NO_NVPMODEL)
    assert (on_jetson.requested, on_jetson.name) == ("auto", "jetson")
    x86 = tmp_path / "x86"
    assert resolve_device(requested, available=ALL, root=x86).name == "cuda"
    assert resolve_device(requested, available=[CPU], root=x86).name == "cpu"


def test_auto_on_a_jetson_with_the_cpu_only_wheel_runs_on_cpu_quietly(tmp_path):
    device = resolve_device("auto", available=[CPU], root=orin_nano(tmp_path), run=NO_NVPMODEL)
    assert (device.name, device.fallback) == ("cpu", None)
    assert device.jetson is not None and device.label() == "cpu (CPUExecutionProvider)"


# ---------------------------------------------------------------- this machine's onnxruntime


def test_cpu_with_the_real_onnxruntime(tmp_path):
    device = resolve_device("cpu", root=tmp_path)
    assert device.providers == (CPU,)


def test_cuda_with_the_real_onnxruntime(tmp_path):
    import onnxruntime

    if CUDA in onnxruntime.get_available_providers():
        assert resolve_device("cuda", root=tmp_path).providers == (CUDA, CPU)
    else:
        with pytest.raises(DeviceError, match=rf"\({onnxruntime.__version__}, providers: "):
            resolve_device("cuda", root=tmp_path)
