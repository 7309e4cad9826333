"""Knowledge distillation: a student network learns from a trained teacher's logits as well as the labels.

The `distill@<student>` stage trains ``students.<student>`` (params.yaml) with the loss of its recipe plus
``weight x T^2 x KL(softmax(teacher / T) || softmax(student / T))`` per pixel (Hinton et al. 2015; the T^2
keeps the soft term's gradients on the scale of the hard one when T changes). The teacher is a frozen
checkpoint of another benchmark (`models/<teacher>/best.pt`): it sees the same augmented batch as the student,
so no soft labels are stored and augmentation stays free.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import torch
import torch.nn.functional as F

from cityseg.config import ConfigError, ModelConfig, TrainConfig, benchmark_configs, distill_config
from cityseg.inference import autocast
from cityseg.models import load_checkpoint


def kd_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 x the mean over pixels of KL(softmax(teacher / T) || softmax(student / T)), in float32.

    student, teacher: (B, C, H, W) logits of the same shape. Every pixel counts, ignore-labelled ones too: the
    teacher has an opinion where the annotation has none.
    """
    if student.shape != teacher.shape:
        raise ValueError(f"student logits {tuple(student.shape)} and teacher logits {tuple(teacher.shape)} differ")
    t = float(temperature)
    log_s = F.log_softmax(student.float() / t, dim=1)
    log_t = F.log_softmax(teacher.float() / t, dim=1)
    kl = (log_t.exp() * (log_t - log_s)).sum(1)  # (B, H, W)
    return kl.mean() * t * t


def file_digest(path: str | Path) -> str:
    """sha256 of a file: the teacher's identity in the student's resume hash (a retrained teacher restarts)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclasses.dataclass(frozen=True)
class TeacherSpec:
    """What `train.fit` needs to distil: the teacher's checkpoint and the KL term's temperature and weight."""

    path: Path
    temperature: float
    weight: float

    def identity(self) -> dict:
        """The part of the student's resume hash that the teacher sets."""
        return {"sha256": file_digest(self.path), "temperature": self.temperature, "weight": self.weight}


class Teacher:
    """A frozen checkpoint whose logits the student's loss adds (`__call__`): weight x `kd_loss`."""

    def __init__(self, spec: TeacherSpec, device: torch.device, amp_dtype: torch.dtype | None):
        self.model, _, _ = load_checkpoint(spec.path, device)
        self.model.eval().requires_grad_(False)
        self.temperature, self.weight, self.amp_dtype = spec.temperature, spec.weight, amp_dtype

    @torch.no_grad()
    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """The teacher's logits for a normalised batch, at the batch's size (float32)."""
        with autocast(images.device, self.amp_dtype):
            out = self.model(images)
        if out.shape[-2:] != images.shape[-2:]:
            out = F.interpolate(out.float(), size=images.shape[-2:], mode="bilinear", align_corners=False)
        return out.float()

    def __call__(self, student_logits: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        """The distillation term of the loss for this batch."""
        return self.weight * kd_loss(student_logits, self.logits(images), self.temperature)


def model_configs(params: dict, name: str, teacher_path: str | None) -> tuple[ModelConfig, TrainConfig, TeacherSpec | None]:
    """What the train stage trains for benchmark or student ``name``: its model and train configs and its teacher.

    A student (``students.<name>``) needs the teacher's checkpoint and may start from its weights
    (``init_from_teacher``); a benchmark must not be given one.
    """
    model_cfg, train_cfg = benchmark_configs(params, name)
    if name not in (params.get("students") or {}):
        if teacher_path:
            raise ConfigError(f"--teacher is for students; {name} is under 'benchmarks'")
        return model_cfg, train_cfg, None
    if not teacher_path:
        raise ConfigError(f"{name} is a student (students.{name}): pass --teacher CHECKPOINT")
    cfg = distill_config(params, name)
    if cfg.init_from_teacher:
        model_cfg = dataclasses.replace(model_cfg, weights_path=str(teacher_path))
    return model_cfg, train_cfg, TeacherSpec(Path(teacher_path), cfg.temperature, cfg.weight)
