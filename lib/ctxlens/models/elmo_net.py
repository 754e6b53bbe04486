"""The ELMo network (bilm-tf / AllenNLP `_ElmoBiLm`) in plain PyTorch, and its weight file.

Weights are kept in the TensorFlow layout of the original hdf5 file (x @ W, LSTM gates in
the order i, j, f, o) so that loading is a copy and the maths reads like bilm-tf.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelUnavailable


@dataclass(frozen=True)
class ElmoOptions:
    char_dim: int
    filters: tuple[tuple[int, int], ...]  # (width, channels)
    n_highway: int
    n_characters: int
    max_chars: int
    activation: str  # "tanh" | "relu"
    n_layers: int
    cell_dim: int
    proj_dim: int
    cell_clip: float | None
    proj_clip: float | None
    skip: bool

    @property
    def n_filters(self) -> int:
        return sum(n for _, n in self.filters)

    @property
    def use_proj(self) -> bool:
        # bilm-tf only projects the CNN features when their width differs from the LSTM's.
        return self.n_filters != self.proj_dim


def read_options(path: str | Path, model: str) -> ElmoOptions:
    """Parse options.json; a missing file or key becomes ModelUnavailable with the cause."""
    path = Path(path)
    if not path.is_file():
        raise ModelUnavailable(model, f"options file not found: {path}")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        cnn, lstm = raw["char_cnn"], raw["lstm"]
        opts = ElmoOptions(
            char_dim=int(cnn["embedding"]["dim"]),
            filters=tuple((int(w), int(n)) for w, n in cnn["filters"]),
            n_highway=int(cnn["n_highway"]),
            n_characters=int(cnn["n_characters"]),
            max_chars=int(cnn["max_characters_per_token"]),
            activation=str(cnn["activation"]),
            n_layers=int(lstm["n_layers"]),
            cell_dim=int(lstm["dim"]),
            proj_dim=int(lstm["projection_dim"]),
            cell_clip=_clip(lstm.get("cell_clip")),
            proj_clip=_clip(lstm.get("proj_clip")),
            skip=bool(lstm.get("use_skip_connections", False)),
        )
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelUnavailable(model, f"options file is not valid JSON ({exc})") from exc
    except (KeyError, TypeError) as exc:
        raise ModelUnavailable(model, f"options file lacks the ELMo setting {exc}") from exc
    if opts.activation not in ("tanh", "relu"):
        raise ModelUnavailable(model, f"unknown char-CNN activation {opts.activation!r}")
    if opts.max_chars < 3 or opts.n_layers < 1:
        raise ModelUnavailable(model, "options file describes an impossible network")
    return opts


def _clip(value) -> float | None:
    return None if value in (None, 0) else float(value)


def expected_shapes(o: ElmoOptions) -> dict[str, tuple[int, ...]]:
    """Every dataset the weight file must hold, with the shape the options imply."""
    shapes: dict[str, tuple[int, ...]] = {"char_embed": (o.n_characters - 1, o.char_dim)}
    for i, (width, n) in enumerate(o.filters):
        shapes[f"CNN/W_cnn_{i}"] = (1, width, o.char_dim, n)
        shapes[f"CNN/b_cnn_{i}"] = (n,)
    f = o.n_filters
    for k in range(o.n_highway):
        for part in ("carry", "transform"):
            shapes[f"CNN_high_{k}/W_{part}"] = (f, f)
            shapes[f"CNN_high_{k}/b_{part}"] = (f,)
    if o.use_proj:
        shapes["CNN_proj/W_proj"] = (f, o.proj_dim)
        shapes["CNN_proj/b_proj"] = (o.proj_dim,)
    for d in (0, 1):
        for k in range(o.n_layers):
            cell = lstm_cell_name(d, k)
            shapes[f"{cell}/W_0"] = (o.proj_dim + o.proj_dim, 4 * o.cell_dim)
            shapes[f"{cell}/B"] = (4 * o.cell_dim,)
            shapes[f"{cell}/W_P_0"] = (o.cell_dim, o.proj_dim)
    return shapes


def lstm_cell_name(direction: int, layer: int) -> str:
    return f"RNN_{direction}/RNN/MultiRNNCell/Cell{layer}/LSTMCell"


def read_weights(path: str | Path, o: ElmoOptions, model: str) -> dict[str, np.ndarray]:
    """All datasets as float32 arrays, after checking each exists with the right shape."""
    import h5py  # local: only ELMo needs it

    path = Path(path)
    if not path.is_file():
        raise ModelUnavailable(model, f"weight file not found: {path}")
    corrupt = f"weight file is corrupt or truncated ({path.name})"
    try:
        with h5py.File(path, "r") as fin:
            arrays = {}
            for name, shape in expected_shapes(o).items():
                if name not in fin or not isinstance(fin[name], h5py.Dataset):
                    raise ModelUnavailable(model, f"weight file lacks the dataset '{name}'")
                if fin[name].shape != shape:
                    raise ModelUnavailable(
                        model, f"dataset '{name}' has shape {fin[name].shape}, "
                        f"the options imply {shape} (options and weights do not match)",
                    )
                arrays[name] = np.asarray(fin[name][...], dtype=np.float32)
    except ModelUnavailable:
        raise
    except (OSError, KeyError, ValueError, RuntimeError) as exc:  # h5py's errors for bad bytes
        raise ModelUnavailable(model, corrupt) from exc
    if not all(np.isfinite(a).all() for a in arrays.values()):
        raise ModelUnavailable(model, f"{corrupt}: it holds NaN or infinite weights")
    return arrays


def _frozen(array: np.ndarray) -> nn.Parameter:
    return nn.Parameter(torch.from_numpy(np.ascontiguousarray(array)), requires_grad=False)


class CharCNN(nn.Module):
    """Characters → context-independent token vector: embedding, CNN, highway, projection."""

    def __init__(self, o: ElmoOptions, w: dict[str, np.ndarray]):
        super().__init__()
        # Character id 0 means "no character": a zero row in front of the trained table.
        table = np.concatenate([np.zeros((1, o.char_dim), np.float32), w["char_embed"]])
        self.char_embed = _frozen(table)
        # [1, width, in, out] → [width * in, out]: convolution as a matmul over windows
        self.conv_w = nn.ParameterList(
            [_frozen(w[f"CNN/W_cnn_{i}"].reshape(-1, n)) for i, (_, n) in enumerate(o.filters)]
        )
        self.conv_b = nn.ParameterList(
            [_frozen(w[f"CNN/b_cnn_{i}"]) for i in range(len(o.filters))]
        )
        self.highway = nn.ParameterList()
        for k in range(o.n_highway):
            for name in ("W_carry", "b_carry", "W_transform", "b_transform"):
                self.highway.append(_frozen(w[f"CNN_high_{k}/{name}"]))
        self.proj = (
            nn.ParameterList([_frozen(w["CNN_proj/W_proj"]), _frozen(w["CNN_proj/b_proj"])])
            if o.use_proj else None
        )
        self.activation = torch.tanh if o.activation == "tanh" else torch.relu

    @staticmethod
    def _conv(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """'VALID' 1-d convolution as a plain matmul, so GPUs never use TF32 convolutions."""
        width = w.shape[0] // x.shape[-1]
        windows = x.unfold(1, width, 1).transpose(-1, -2)  # [N, positions, width, char_dim]
        return windows.reshape(*windows.shape[:2], -1) @ w

    def forward(self, char_ids: torch.Tensor) -> torch.Tensor:
        """[N, max_chars] character ids → [N, proj_dim]."""
        x = F.embedding(char_ids, self.char_embed)  # [N, chars, char_dim]
        # Max over positions, then the activation (as bilm-tf; both are monotone).
        feats = [self._conv(x, w).add(b).amax(dim=1) for w, b in zip(self.conv_w, self.conv_b)]
        h = self.activation(torch.cat(feats, dim=-1))
        for k in range(0, len(self.highway), 4):
            w_gate, b_gate, w_tr, b_tr = self.highway[k : k + 4]
            # bilm-tf names: the sigmoid gate uses W_carry, the relu branch W_transform;
            # the gate weighs the transformed value, (1 - gate) carries the input through.
            gate = torch.sigmoid(h @ w_gate + b_gate)
            h = gate * torch.relu(h @ w_tr + b_tr) + (1.0 - gate) * h
        if self.proj is not None:
            h = h @ self.proj[0] + self.proj[1]
        return h


class ProjectedLSTM(nn.Module):
    """One direction of one layer: TensorFlow's LSTMCell with cell clip and projection."""

    def __init__(self, o: ElmoOptions, w: dict[str, np.ndarray], direction: int, layer: int):
        super().__init__()
        cell = lstm_cell_name(direction, layer)
        w0, bias = w[f"{cell}/W_0"], w[f"{cell}/B"].copy()
        bias[2 * o.cell_dim : 3 * o.cell_dim] += 1.0  # TF adds forget_bias=1.0 at run time
        self.w_x = _frozen(w0[: o.proj_dim])  # input part of the stacked [input; state] matrix
        self.w_h = _frozen(w0[o.proj_dim :])
        self.bias = _frozen(bias)
        self.w_proj = _frozen(w[f"{cell}/W_P_0"])
        self.cell_clip, self.proj_clip = o.cell_clip, o.proj_clip

    def forward(self, x: torch.Tensor, lengths: torch.Tensor, h: torch.Tensor, c: torch.Tensor):
        """x [B, T, in] left-aligned, lengths [B]; state h [B, proj], c [B, cell].

        Returns outputs [B, T, proj] (zero past each row's length) and the state after each
        row's last real step (padding steps leave the state unchanged).
        """
        steps = x @ self.w_x + self.bias  # all input projections in one matmul
        outputs = []
        for t in range(x.shape[1]):
            i, j, f, o = (steps[:, t] + h @ self.w_h).chunk(4, dim=-1)
            c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(j)
            if self.cell_clip is not None:
                c_new = c_new.clamp(-self.cell_clip, self.cell_clip)
            h_new = (torch.sigmoid(o) * torch.tanh(c_new)) @ self.w_proj
            if self.proj_clip is not None:
                h_new = h_new.clamp(-self.proj_clip, self.proj_clip)
            live = (lengths > t).unsqueeze(-1)
            c = torch.where(live, c_new, c)
            h = torch.where(live, h_new, h)
            outputs.append(torch.where(live, h_new, torch.zeros_like(h_new)))
        out = torch.stack(outputs, dim=1) if outputs else x.new_zeros(x.shape[0], 0, h.shape[-1])
        return out, h, c


def reverse_padded(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each row's first `length` steps, leaving its padding in place.

    The backward LM then reads each sentence's real tokens only, starting at its last one.
    """
    t = torch.arange(x.shape[1], device=x.device).unsqueeze(0)
    idx = torch.where(t < lengths.unsqueeze(1), lengths.unsqueeze(1) - 1 - t, t)
    return x.gather(1, idx.unsqueeze(-1).expand_as(x))
