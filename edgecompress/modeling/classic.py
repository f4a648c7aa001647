"""Students that are not transformers: a BiLSTM and a TextCNN over the teacher's word-pieces (Tang et al. 2019,
"Distilling Task-Specific Knowledge from BERT into Simple Neural Networks"; Kim 2014 for the TextCNN).

Both read the same inputs as the BERT students (``input_ids``, ``attention_mask``), start from the teacher's
word-embedding table (optionally reduced to ``embedding_dim`` through its leading principal directions), pool
the sequence into one sentence vector and classify it. They return transformers-style outputs (``logits``,
``pooled``), save as ``config.json`` + ``model.safetensors`` and export to ONNX with dynamic batch and
sequence axes, so distillation, export, quantization, benchmark and ``edgecompress predict`` treat them like
the others (``load_saved_classifier`` rebuilds them from ``config.json``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

ARCHITECTURES = ("bilstm", "textcnn")
CONFIG_NAME = "config.json"


@dataclass
class ClassicConfig:
    """Everything that rebuilds a classic student; written as its ``config.json``."""

    architecture: str  # bilstm | textcnn
    vocab_size: int
    embedding_dim: int
    num_labels: int
    id2label: dict[int, str]
    pad_token_id: int = 0
    hidden_size: int = 256  # bilstm: units per direction
    num_layers: int = 1  # bilstm layers
    pooling: str = "max"  # bilstm: max | mean over real tokens
    kernel_sizes: list[int] = field(default_factory=lambda: [2, 3, 4])  # textcnn
    filters: int = 128  # textcnn: per kernel size
    dropout: float = 0.1
    model_type: str = "edgecompress-classic"

    @property
    def label2id(self) -> dict[str, int]:
        return {v: int(k) for k, v in self.id2label.items()}

    def save_pretrained(self, folder: Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        data = asdict(self)
        data["id2label"] = {str(k): v for k, v in self.id2label.items()}
        data["label2id"] = self.label2id
        (folder / CONFIG_NAME).write_text(json.dumps(data, indent=2))

    @classmethod
    def from_folder(cls, folder: Path) -> ClassicConfig:
        data = json.loads((Path(folder) / CONFIG_NAME).read_text())
        data.pop("label2id", None)
        data["id2label"] = {int(k): v for k, v in data["id2label"].items()}
        return cls(**data)


def is_classic(folder: Path) -> bool:
    path = Path(folder) / CONFIG_NAME
    return path.is_file() and json.loads(path.read_text()).get("model_type") == ClassicConfig.model_type


@dataclass
class ClassicOutput:
    logits: torch.Tensor
    pooled: torch.Tensor  # the sentence vector the classifier reads (matched to the teacher's, if asked)


class ClassicClassifier(nn.Module):
    """Embeddings -> encoder (BiLSTM or TextCNN) -> pooled sentence vector -> dropout -> linear classifier."""

    def __init__(self, config: ClassicConfig):
        super().__init__()
        self.config = config
        self.embeddings = nn.Embedding(
            config.vocab_size, config.embedding_dim, padding_idx=config.pad_token_id
        )
        if config.architecture == "bilstm":
            # one unidirectional LSTM per direction and layer: the backward one reads each sequence's real
            # tokens reversed (see _reverse), so trailing padding never reaches a real token's state
            self.encoder = nn.ModuleList(
                nn.ModuleList(
                    nn.LSTM(
                        config.embedding_dim if i == 0 else 2 * config.hidden_size,
                        config.hidden_size,
                        batch_first=True,
                    )
                    for _ in range(2)
                )
                for i in range(config.num_layers)
            )
            width = 2 * config.hidden_size
        elif config.architecture == "textcnn":
            self.encoder = nn.ModuleList(
                nn.Conv1d(config.embedding_dim, config.filters, k, padding=k - 1) for k in config.kernel_sizes
            )
            width = config.filters * len(config.kernel_sizes)
        else:
            raise ValueError(
                f"unknown architecture '{config.architecture}' (one of {', '.join(ARCHITECTURES)})"
            )
        self.pooled_size = width
        self.convs_as_matmul = False  # set for ONNX export (see _conv_as_matmul); training uses Conv1d
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(width, config.num_labels)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings

    def set_input_embeddings(self, embeddings: nn.Module) -> None:
        self.embeddings = embeddings

    @staticmethod
    def _reverse(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Each sequence's real tokens in reverse order, padding left at the end (its own inverse)."""
        n = x.shape[1]
        lengths = mask.sum(1, keepdim=True)
        positions = torch.arange(n, device=x.device).unsqueeze(0)
        index = torch.where(positions < lengths, lengths - 1 - positions, positions)
        return x.gather(1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))

    def _pool_lstm(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        for forward_lstm, backward_lstm in self.encoder:
            ahead, _ = forward_lstm(x)
            behind, _ = backward_lstm(self._reverse(x, mask))
            x = self.dropout(torch.cat([ahead, self._reverse(behind, mask)], dim=-1))  # [b, n, 2h]
        keep = mask.unsqueeze(-1).to(x.dtype)
        if self.config.pooling == "mean":
            return (x * keep).sum(1) / keep.sum(1).clamp_min(1.0)
        return x.masked_fill(keep == 0, -1e4).max(1).values

    @staticmethod
    def _conv_as_matmul(conv: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
        """``conv(x)`` as one matrix product over k shifted copies of x (same result, [b, filters, n + k - 1]).

        Exported this way, int8 dynamic quantization runs it with ONNX Runtime's int8 MatMul kernels; a
        quantized Conv (ConvInteger) ran slower than the float Conv on CPU."""
        k = conv.kernel_size[0]
        padded = torch.nn.functional.pad(x, (k - 1, k - 1)).transpose(1, 2)  # [b, n + 2k - 2, dim]
        windows = [padded[:, i : (i - k + 1) or None] for i in range(k)]  # k x [b, n + k - 1, dim]
        weight = conv.weight.permute(0, 2, 1).reshape(conv.out_channels, -1)  # [filters, k*dim]
        return torch.nn.functional.linear(torch.cat(windows, dim=-1), weight, conv.bias).transpose(1, 2)

    def _pool_cnn(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x.transpose(1, 2)  # [b, dim, n]
        pooled = []
        for conv in self.encoder:
            h = self._conv_as_matmul(conv, x) if self.convs_as_matmul else conv(x)
            h = torch.relu(h)  # [b, filters, n + k - 1]; position t covers tokens t-k+1 .. t
            k = conv.kernel_size[0]
            # a window is real when it holds at least one real token: pad the mask the way the conv pads
            covered = torch.nn.functional.max_pool1d(
                torch.nn.functional.pad(mask.unsqueeze(1).to(h.dtype), (k - 1, k - 1)), k, stride=1
            )
            pooled.append(h.masked_fill(covered == 0, 0.0).max(-1).values)
        return torch.cat(pooled, dim=-1)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **_unused
    ) -> ClassicOutput:
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        # padding reads as zeros, as the convolution's own padding does: a batch-1 input and the same text in a
        # padded batch give the same logits
        x = self.embeddings(input_ids)
        x = self.dropout(x) * mask.unsqueeze(-1).to(x.dtype)
        pooled = self._pool_lstm(x, mask) if self.config.architecture == "bilstm" else self._pool_cnn(x, mask)
        return ClassicOutput(self.classifier(self.dropout(pooled)), pooled)

    def save_pretrained(self, folder: Path, safe_serialization: bool = True) -> None:
        from safetensors.torch import save_file

        self.config.save_pretrained(folder)
        save_file(
            {k: v.contiguous() for k, v in self.state_dict().items()}, str(Path(folder) / "model.safetensors")
        )


@torch.no_grad()
def teacher_embedding_table(teacher: nn.Module, width: int) -> torch.Tensor:
    """The teacher's word-embedding table, reduced to ``width`` columns through its leading principal
    directions when narrower (the rows keep their geometry as far as ``width`` dimensions allow)."""
    table = teacher.get_input_embeddings().weight.detach().float()
    if width == table.shape[1]:
        return table.clone()
    if width > table.shape[1]:
        raise ValueError(f"embedding_dim {width} is wider than the teacher's {table.shape[1]}")
    _, _, vh = torch.linalg.svd(table - table.mean(0), full_matrices=False)
    return table @ vh[:width].T


def build_classic(
    cfg, teacher: nn.Module, labels: list[str], pad_token_id: int
) -> tuple[ClassicClassifier, dict]:
    """A classic student from the recipe's ``student`` section, its embeddings from the teacher's table."""
    width = cfg.embedding_dim or teacher.config.hidden_size
    config = ClassicConfig(
        architecture=cfg.architecture,
        vocab_size=teacher.get_input_embeddings().weight.shape[0],
        embedding_dim=width,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        pad_token_id=pad_token_id,
        hidden_size=cfg.lstm.hidden_size,
        num_layers=cfg.lstm.num_layers,
        pooling=cfg.lstm.pooling,
        kernel_sizes=list(cfg.cnn.kernel_sizes),
        filters=cfg.cnn.filters,
        dropout=cfg.dropout,
    )
    model = ClassicClassifier(config)
    with torch.no_grad():
        model.embeddings.weight.copy_(teacher_embedding_table(teacher, width))
    params = int(sum(p.numel() for p in model.parameters()))
    return model, {"built_from": "teacher embeddings", "architecture": cfg.architecture, "params": params}
