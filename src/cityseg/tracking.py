"""Where a training run's numbers go: DVCLive always, Weights & Biases as well when ``train.wandb`` is on.

DVCLive writes the per-epoch TSVs, overlays and summary that ``dvc plots``/``dvc exp show`` read. W&B is optional
and off by default: it is imported only when enabled, names its run after the DVC experiment (``$DVC_EXP_NAME``,
set by ``dvc exp run``) and the benchmark, and follows the usual ``WANDB_*`` variables (``WANDB_PROJECT``, default
``cityseg``; ``WANDB_MODE=offline`` on nodes without internet, then ``wandb sync``). Neither changes a result.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

import numpy as np

from cityseg.config import ConfigError

EPOCH_METRICS = {"train/loss": "train_loss", "val/loss": "val_loss", "val/dice": "val_dice", "val/miou": "val_miou",
                 "lr": "lr"}


def start_wandb(name: str, config: dict) -> Any:
    """A W&B run (``wandb.init``) named ``<$DVC_EXP_NAME>-<name>`` (or ``name``), grouped by experiment."""
    try:
        import wandb
    except ImportError as exc:
        raise ConfigError("train.wandb is true but the wandb package is not installed "
                          "(pip install wandb, or set train.wandb: false)") from exc
    exp = os.environ.get("DVC_EXP_NAME")
    return wandb.init(project=os.environ.get("WANDB_PROJECT", "cityseg"), name=f"{exp}-{name}" if exp else name,
                      group=exp or None, job_type="train", config=config)


class RunLog:
    """One training run's loggers; the epoch history is replayed (`epoch`) on a resume, so every log is whole."""

    def __init__(self, live_dir: str | Path, wandb_run: Any = None):
        from dvclive import Live  # imports dvc: seconds, so only when training

        # Not Live(resume=True): the live dir may be gone (dvc repro deletes outputs) or hold rows logged after
        # the resume point; the replay is exact either way.
        self.live = Live(str(live_dir), dvcyaml=False, save_dvc_exp=False, resume=False)
        self.wandb = wandb_run

    def epoch(self, record: dict) -> None:
        """One epoch's numbers (plots/metrics/<name>.tsv, x = step = epoch - 1)."""
        for name, key in EPOCH_METRICS.items():
            self.live.log_metric(name, record[key])
        if self.wandb is not None:
            self.wandb.log({"epoch": record["epoch"], **{name: record[key] for name, key in EPOCH_METRICS.items()}},
                           step=record["epoch"] - 1)
        self.live.next_step()

    def image(self, name: str, image: np.ndarray) -> None:
        """An image of the current step (logged before `epoch` moves on to the next one)."""
        self.live.log_image(name, image)
        if self.wandb is not None:
            import wandb

            self.wandb.log({Path(name).stem: wandb.Image(image)}, step=self.live.step)

    def end(self, best: Optional[dict], exit_code: int = 0) -> None:
        """Close the run: ``best`` into the summaries (a finished run), or only ``exit_code`` (an interrupted one)."""
        if best is not None:
            self.live.summary["best"] = best
            self.live.end()
        if self.wandb is not None:
            if best is not None:
                self.wandb.summary.update({f"best/{k}": v for k, v in best.items()})
            self.wandb.finish(exit_code=exit_code)
