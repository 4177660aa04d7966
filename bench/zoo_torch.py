"""Export one torch-built zoo model (see zoo.py): ``python bench/zoo_torch.py KIND ts|dynamo OPSET OUT``.

Small modules written here (a ResNet block stack with BatchNorm, a MobileNet-style net with squeeze-excite, a
Paddle-style net whose conv biases are separate Adds, a U-Net with resizes, a YOLO-style multi-scale head, a
TransformerEncoder, a GRU) and transformers models built from small configs with random weights (BERT, GPT-2,
ViT, SegFormer). Seeds are fixed; nothing is downloaded.
"""

from __future__ import annotations

import sys

import torch
from torch import nn

torch.manual_seed(0)


def conv_bn(cin: int, cout: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, groups=groups, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class ResNetBN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = conv_bn(3, 16, 2)
        self.blocks = nn.ModuleList([nn.Sequential(conv_bn(16, 16), conv_bn(16, 16)) for _ in range(4)])
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        x = self.stem(x)
        for block in self.blocks:
            x = x + block(x)
        return self.head(x.mean((2, 3)))


class MobileNetSE(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = [conv_bn(3, 16, 2)]
        for _ in range(3):
            layers += [conv_bn(16, 16, groups=16), nn.Conv2d(16, 16, 1), nn.BatchNorm2d(16), nn.Hardswish()]
        self.features = nn.Sequential(*layers)
        self.se = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(16, 4, 1), nn.ReLU(), nn.Conv2d(4, 16, 1))
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.features(x)
        x = x * torch.sigmoid(self.se(x))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


class PaddleBias(nn.Module):
    """Conv without bias followed by an Add of a per-channel parameter, as Paddle2ONNX writes biases."""

    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(3 if i == 0 else 16, 16, 3, 1, 1, bias=False) for i in range(5)])
        self.biases = nn.ParameterList([nn.Parameter(torch.randn(1, 16, 1, 1)) for _ in range(5)])

    def forward(self, x):
        for conv, bias in zip(self.convs, self.biases, strict=True):
            x = torch.relu(conv(x) + bias)
        return x


class UNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.down1, self.down2 = conv_bn(3, 8), conv_bn(8, 16)
        self.up = conv_bn(24, 8)
        self.out = nn.Conv2d(8, 1, 1)

    def forward(self, x):
        a = self.down1(x)
        b = self.down2(nn.functional.max_pool2d(a, 2))
        b = nn.functional.interpolate(b, size=a.shape[2:], mode="nearest")
        return torch.sigmoid(self.out(self.up(torch.cat([a, b], 1))))


class YoloHead(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.ModuleList([conv_bn(3, 16, 2), conv_bn(16, 32, 2), conv_bn(32, 32, 2)])
        self.heads = nn.ModuleList([nn.Conv2d(c, 3 * 7, 1) for c in (16, 32, 32)])

    def forward(self, x):
        outs = []
        for layer, head in zip(self.backbone, self.heads, strict=True):
            x = layer(x)
            y = head(x)
            b, _, h, w = y.shape
            y = y.view(b, 3, 7, h, w).permute(0, 1, 3, 4, 2).reshape(b, -1, 7)
            outs.append(torch.sigmoid(y))
        return torch.cat(outs, 1)


class Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        layer = nn.TransformerEncoderLayer(d_model=64, nhead=4, dim_feedforward=128, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)

    def forward(self, x):
        return self.encoder(x)


class GRUNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(16, 32, num_layers=2, batch_first=True)
        self.fc = nn.Linear(32, 4)

    def forward(self, x):
        y, _ = self.gru(x)
        return self.fc(y)


class HF(nn.Module):
    def __init__(self, model: nn.Module, key: str) -> None:
        super().__init__()
        self.model, self.key = model, key

    def forward(self, x):
        out = self.model(**{self.key: x})
        hidden = getattr(out, "last_hidden_state", None)
        return hidden if hidden is not None else out[0]


def hf(kind: str) -> nn.Module:
    import transformers as t

    if kind == "bert":
        config = t.BertConfig(
            hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, vocab_size=1000
        )
        return HF(t.BertModel(config), "input_ids")
    if kind == "gpt2":
        return HF(
            t.GPT2Model(t.GPT2Config(n_embd=64, n_layer=2, n_head=4, vocab_size=1000, use_cache=False)), "input_ids"
        )
    if kind == "vit":
        config = t.ViTConfig(
            hidden_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=128,
            image_size=64,
            patch_size=8,
        )
        return HF(t.ViTModel(config), "pixel_values")
    config = t.SegformerConfig(hidden_sizes=[16, 32, 64, 64], depths=[1, 1, 1, 1], decoder_hidden_size=64, num_labels=4)
    return HF(t.SegformerForSemanticSegmentation(config), "pixel_values")


MODULES = {
    "resnet_bn": (ResNetBN, lambda: torch.randn(2, 3, 64, 64), {0: "batch"}),
    "mobilenet_se": (MobileNetSE, lambda: torch.randn(2, 3, 64, 64), {0: "batch"}),
    "paddle_bias": (PaddleBias, lambda: torch.randn(1, 3, 32, 32), {0: "batch", 2: "height", 3: "width"}),
    "unet": (UNet, lambda: torch.randn(1, 3, 64, 64), {0: "batch", 2: "height", 3: "width"}),
    "yolo_head": (YoloHead, lambda: torch.randn(1, 3, 64, 64), {0: "batch"}),
    "encoder": (Encoder, lambda: torch.randn(2, 16, 64), {0: "batch", 1: "seq"}),
    "gru": (GRUNet, lambda: torch.randn(2, 8, 16), {0: "batch", 1: "time"}),
    "bert": (lambda: hf("bert"), lambda: torch.randint(0, 1000, (2, 16)), {0: "batch", 1: "seq"}),
    "gpt2": (lambda: hf("gpt2"), lambda: torch.randint(0, 1000, (2, 16)), {0: "batch", 1: "seq"}),
    "vit": (lambda: hf("vit"), lambda: torch.randn(2, 3, 64, 64), {0: "batch"}),
    "segformer": (lambda: hf("segformer"), lambda: torch.randn(1, 3, 64, 64), {0: "batch"}),
}


def main() -> None:
    kind, exporter, opset, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    make, example, dynamic = MODULES[kind]
    torch.backends.mha.set_fastpath_enabled(False)  # else TorchScript meets an op it cannot export
    model = make().eval()
    x = example()
    name = "ids" if kind in ("bert", "gpt2") else "x"
    with torch.no_grad():
        if exporter == "ts":
            torch.onnx.export(
                model,
                (x,),
                out,
                dynamo=False,
                opset_version=opset,
                input_names=[name],
                output_names=["y"],
                dynamic_axes={name: dynamic},
            )
        else:
            program = torch.onnx.export(model, (x,), dynamo=True, input_names=[name], output_names=["y"])
            program.save(out)


if __name__ == "__main__":
    main()
