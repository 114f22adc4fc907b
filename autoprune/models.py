"""The built-in model zoo, torchvision models by name and user entry points.

Example:
    >>> model = build_model(ModelSpec("vgg", width=0.25, in_channels=1, num_classes=10))
"""

from __future__ import annotations

import inspect
import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from autoprune.errors import ConfigError

__all__ = ["ModelSpec", "build_model", "check_input_size", "VGG", "ResNet20", "MobileNetV2",
           "SmallCNN", "ZOO"]

VGG_CFG: list[int | str] = [64, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a model's architecture (not its weights).

    Args:
        name: ``vgg``, ``resnet20``, ``mobilenetv2``, ``cnn``, ``torchvision:NAME`` or a user
            entry point ``package.module:function`` returning an ``nn.Module``.
        width: Channel width multiplier (built-in models only).
        in_channels: Input image channels.
        num_classes: Classifier outputs.
    """

    name: str = "vgg"
    width: float = 1.0
    in_channels: int = 3
    num_classes: int = 10

    def __post_init__(self) -> None:
        if not (isinstance(self.width, (int, float)) and 0 < self.width < math.inf):
            raise ConfigError(f"width must be a positive finite number, got {self.width!r}.")
        if self.in_channels <= 0 or self.num_classes <= 1:
            raise ConfigError(
                f"in_channels must be >= 1 and num_classes >= 2, got {self.in_channels} and "
                f"{self.num_classes}."
            )
        if self.name not in ZOO and ":" not in self.name:
            raise ConfigError(
                f"Unknown model {self.name!r}: use one of {sorted(ZOO)}, 'torchvision:NAME' "
                "or a 'package.module:function' entry point."
            )

    @property
    def is_builtin(self) -> bool:
        """Built from the zoo or torchvision's registry: no user code runs."""
        return self.name in ZOO or self.name.startswith("torchvision:")

    def to_dict(self) -> dict:
        return asdict(self)


def _ch(c: int, width: float) -> int:
    return max(1, int(round(c * width)))


class VGG(nn.Module):
    """The pruning lab's VGG: conv3x3-BN-ReLU blocks, global average pool, linear classifier."""

    def __init__(self, width: float = 1.0, in_channels: int = 3, num_classes: int = 10,
                 cfg: list[int | str] | None = None) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = in_channels
        for v in cfg or VGG_CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
                continue
            c_out = _ch(int(v), width)
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                       nn.ReLU(inplace=True)]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        return self.classifier(x.mean(dim=(2, 3)))


class _BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False),
                                          nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet20(nn.Module):
    """CIFAR-style ResNet-20 (3 stages x 3 basic blocks, 1x1-conv projection shortcuts)."""

    def __init__(self, width: float = 1.0, in_channels: int = 3, num_classes: int = 10) -> None:
        super().__init__()
        widths = [_ch(c, width) for c in (16, 32, 64)]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        blocks, c_in = [], widths[0]
        for stage, c in enumerate(widths):
            for i in range(3):
                blocks.append(_BasicBlock(c_in, c, 2 if stage > 0 and i == 0 else 1))
                c_in = c
        self.layers = nn.Sequential(*blocks)
        self.fc = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(self.relu(self.bn1(self.conv1(x))))
        return self.fc(x.mean(dim=(2, 3)))


class _InvertedResidual(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = c_in * expand
        self.use_res = stride == 1 and c_in == c_out
        layers: list[nn.Module] = []
        if expand != 1:
            layers += [nn.Conv2d(c_in, hidden, 1, bias=False), nn.BatchNorm2d(hidden),
                       nn.ReLU6(inplace=True)]
        layers += [
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, c_out, 1, bias=False), nn.BatchNorm2d(c_out),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res else self.conv(x)


class MobileNetV2(nn.Module):
    """CIFAR-style MobileNetV2 (stride 1 stem, depthwise separable inverted residuals)."""

    SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                (6, 160, 3, 2), (6, 320, 1, 1)]

    def __init__(self, width: float = 1.0, in_channels: int = 3, num_classes: int = 10) -> None:
        super().__init__()
        c_in = _ch(32, width)
        layers: list[nn.Module] = [nn.Conv2d(in_channels, c_in, 3, 1, 1, bias=False),
                                   nn.BatchNorm2d(c_in), nn.ReLU6(inplace=True)]
        for t, c, n, s in self.SETTINGS:
            c_out = _ch(c, width)
            for i in range(n):
                layers.append(_InvertedResidual(c_in, c_out, s if i == 0 else 1, t))
                c_in = c_out
        last = _ch(1280, max(1.0, width))
        layers += [nn.Conv2d(c_in, last, 1, bias=False), nn.BatchNorm2d(last),
                   nn.ReLU6(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(last, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).mean(dim=(2, 3)))


class SmallCNN(nn.Module):
    """The classic MNIST toy: three 3x3 convs with max-pooling, then two linear layers."""

    def __init__(self, width: float = 1.0, in_channels: int = 1, num_classes: int = 10) -> None:
        super().__init__()
        c1, c2, c3 = _ch(16, width), _ch(32, width), _ch(64, width)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(c2, c3, 3, padding=1), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(3),
        )
        self.fc1 = nn.Linear(c3 * 9, _ch(128, width))
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(_ch(128, width), num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.relu(self.fc1(torch.flatten(self.features(x), 1))))


ZOO = {"vgg": VGG, "resnet20": ResNet20, "mobilenetv2": MobileNetV2, "cnn": SmallCNN}


def build_model(spec: ModelSpec) -> nn.Module:
    """Build a freshly initialised model from its spec."""
    if spec.name in ZOO:
        return ZOO[spec.name](spec.width, spec.in_channels, spec.num_classes)
    if spec.name.startswith("torchvision:"):
        return _torchvision_model(spec.name.split(":", 1)[1], spec.in_channels, spec.num_classes)
    from autoprune.data import resolve_entry_point

    fn = resolve_entry_point(spec.name)
    params = inspect.signature(fn).parameters
    kwargs = {k: getattr(spec, k) for k in ("in_channels", "num_classes", "width") if k in params}
    model = fn(**kwargs)
    if not isinstance(model, nn.Module):
        raise TypeError(f"Entry point {spec.name!r} returned {type(model).__name__}, "
                        "not an nn.Module.")
    return model


def check_input_size(model: nn.Module, spec: ModelSpec, input_size: tuple[int, ...]) -> None:
    """Run one forward pass of zeros; ConfigError naming the sizes when the model cannot."""
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *input_size))
    except RuntimeError as exc:
        raise ConfigError(
            f"Model {spec.name!r} (width {spec.width}) cannot take inputs of size "
            f"{'x'.join(map(str, input_size))}: {str(exc).splitlines()[0][:160]}") from None
    finally:
        model.train(was_training)


def _torchvision_model(name: str, in_channels: int, num_classes: int) -> nn.Module:
    import torchvision

    try:
        builder = torchvision.models.get_model_builder(name)
    except ValueError as exc:
        raise ConfigError(f"Unknown torchvision model {name!r}: {exc}") from exc
    model = builder(weights=None, num_classes=num_classes)
    if in_channels != 3:
        for parent in model.modules():
            for child_name, child in parent.named_children():
                if isinstance(child, nn.Conv2d) and child.in_channels == 3:
                    setattr(parent, child_name, nn.Conv2d(
                        in_channels, child.out_channels, child.kernel_size, child.stride,
                        child.padding, child.dilation, child.groups, child.bias is not None))
                    return model
    return model
