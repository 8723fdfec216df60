"""State dicts going into a registered version: checkpoint files read as plain tensors, fit checks.

A checkpoint file is read with ``torch.load(weights_only=True)``, so importing one never unpickles
arbitrary objects; training scripts' wrappers (``{"state_dict": ...}``, ``{"model": ...}``) and the
``module.`` prefix of DataParallel are undone. Any state dict, imported or trained here, must fit its
architecture exactly before it is logged: :func:`load_into_network` names the first key that does not.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepsift.files import file_sha256
from deepsift.registry.errors import CheckpointError, CheckpointMismatchError, first_line

if TYPE_CHECKING:  # torch, timm and the network code load only where a network is built: not on a scan's driver
    import torch
    from torch import nn

CHECKPOINT_WRAPPER_KEYS = ("state_dict", "model")
"""Training scripts often save ``{"state_dict": ...}`` or ``{"model": ...}`` instead of the bare dict."""


def read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """A checkpoint file's state dict, read as plain tensors, unwrapped and without ``module.``."""
    import torch

    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for unreadable files; none may escape raw
        raise CheckpointError(f"cannot read checkpoint {path} as plain tensors: {first_line(error)}") from None
    if isinstance(loaded, Mapping):
        for key in CHECKPOINT_WRAPPER_KEYS:
            if isinstance(loaded.get(key), Mapping):
                loaded = loaded[key]
                break
    if not isinstance(loaded, Mapping):
        raise CheckpointError(f"checkpoint {path} holds a {type(loaded).__name__}, not a state dict")
    return {str(key).removeprefix("module."): value for key, value in loaded.items()}


def checkpoint_params(path: Path) -> dict[str, str]:
    """The run parameters that say which file a version was imported from: its name and SHA-256."""
    return {"checkpoint_file": path.name, "checkpoint_sha256": file_sha256(path)}


def load_into_network(architecture: str, state_dict: Mapping[str, Any]) -> nn.Module:
    """Build ``architecture`` and load ``state_dict`` into it, or raise :class:`CheckpointMismatchError`."""
    from deepsift.detect.architectures import build_detector_network

    network = build_detector_network(architecture)
    problem = state_dict_problem(network, state_dict)
    if problem:
        raise CheckpointMismatchError(f"state dict does not fit {architecture}: {problem}")
    network.load_state_dict(state_dict, strict=True)
    return network


def state_dict_problem(network: nn.Module, state_dict: Mapping[str, Any]) -> str | None:
    """The first way ``state_dict`` fails to fit ``network`` (missing, mis-shaped or unexpected key)."""
    import torch

    expected = network.state_dict()
    problems: list[str] = []
    for key, tensor in expected.items():
        value = state_dict.get(key)
        if value is None:
            problems.append(f"missing key {key!r} (architecture expects shape {tuple(tensor.shape)})")
        elif not isinstance(value, torch.Tensor):
            problems.append(f"key {key!r} holds a {type(value).__name__}, not a tensor")
        elif value.shape != tensor.shape:
            problems.append(
                f"key {key!r}: checkpoint shape {tuple(value.shape)}, architecture expects {tuple(tensor.shape)}"
            )
    problems += [f"unexpected key {key!r}" for key in state_dict if key not in expected]
    if not problems:
        return None
    return problems[0] + (f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else "")
