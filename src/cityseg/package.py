"""One benchmark's competition submission (stage ``package@<benchmark>``), generated from its checkpoint.

``submissions/<benchmark>/``:

* ``model.py``: ``class Model(nn.Module)`` whose no-argument constructor rebuilds the trained architecture.
  Our nets' source is copied from `cityseg.unet` / `cityseg.fastscnn` (and the refusal wrapper from
  `cityseg.ood`) by `cityseg.codegen`; smp models subclass smp's own class. The constructor arguments are
  pinned from the checkpoint's model config (`models.constructor`, the arguments training built it with).
  ``forward`` is the network alone, so the FLOPs server counts it at the full 1x3x1024x2048 input (the
  count the metrics report); resizing to the training size happens in predict.py, before the model.
* ``model.pt``: its state_dict (``torch.load(weights_only=True)``, ``load_state_dict(strict=True)``).
* ``predict.py``: the 2025-26 Docker entrypoint (`cityseg.serve.main`), ``Dockerfile``, ``requirements.txt``
  (only what model.py and predict.py import, at the versions the pipeline ran), ``README.md``.
* ``submission_<benchmark>.zip``: the 2024-25 format (model.py, model.pth, process_data.py).
* ``selftest.json``: written by `cityseg.selftest`.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.metadata
import io
import re
import sys
import zipfile
from pathlib import Path
from typing import Any

import torch

from cityseg import codegen, serve
from cityseg.inference import Predictor
from cityseg.io import DataError
from cityseg.models import constructor, load_checkpoint
from cityseg.ood import OODSegmenter

# Distributions the course's base image already has: installing torch again would replace its CUDA build.
BASE_IMAGE_HAS = {"torch", "torchvision"}


@dataclasses.dataclass
class Trained:
    """What a submission pins, read from the checkpoint (and, for a refusing submission, the OOD model)."""

    predictor: Predictor  # the checkpoint as evaluation ran it (input size, the min_class_area evaluation chose)
    cls: type  # the architecture's class and its constructor arguments (`models.constructor`)
    kwargs: dict[str, Any]
    state: dict[str, Any]  # Model()'s state_dict: the checkpoint's, or the OOD model's
    refusal: dict[str, Any] | None  # OODSegmenter arguments and buffer sizes, or None

    @property
    def settings(self) -> dict[str, Any]:
        """`serve.SETTINGS` of this submission."""
        return {"input_size": [int(s) for s in self.predictor.input_size], "min_area": float(self.predictor.min_area),
                "refusal": self.refusal is not None}


def selected_min_area(metrics: dict, path: str | Path) -> float:
    """``selection.min_class_area`` of a metrics file: the small-class threshold evaluation chose on its selection
    split and scored the reported Dice with, so the submission must use it too."""
    value = (metrics.get("selection") or {}).get("min_class_area") if isinstance(metrics, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise DataError(f"{path}: selection.min_class_area is {value!r}, not a fraction in [0, 1) "
                        "(metrics from before the selection sweep?); re-run evaluate")
    return float(value)


def read_trained(checkpoint: str | Path, refusal_model: str | Path | None = None,
                 min_area: float | None = None) -> Trained:
    """The checkpoint's model and config, and the saved ``OODSegmenter`` state when it refuses images.

    ``min_area``: the small-class threshold evaluation chose (`selected_min_area`); None = the checkpoint's
    ``train.min_class_area``.
    """
    model, cfg, meta = load_checkpoint(checkpoint)
    predictor = Predictor.from_loaded(model, meta, torch.device("cpu"))
    if min_area is not None:
        predictor = dataclasses.replace(predictor, min_area=float(min_area))
    cls, kwargs = constructor(cfg)
    state = model.state_dict()
    if refusal_model is None:
        return Trained(predictor, cls, kwargs, state, None)
    path = Path(refusal_model)
    try:
        ood_state = torch.load(path, map_location="cpu", weights_only=True)
        extra = ood_state["_extra_state"]
        refusal = {"method": extra["method"], "feature_layer": extra.get("feature_layer"),
                   "temperature": float(ood_state["temperature"]), "features": int(ood_state["maha_mean"].numel())}
    except Exception as exc:  # missing file, not a state_dict, not an OODSegmenter's
        raise DataError(f"{path}: not an OOD model saved by evaluate ({type(exc).__name__}: {exc})") from None
    # The refusal must wrap the very weights being submitted: a stale OOD model would ship other weights.
    for key, value in state.items():
        other = ood_state.get(f"segmenter.{key}")
        if not (isinstance(other, torch.Tensor) and other.shape == value.shape and torch.equal(other, value)):
            raise DataError(f"{path}: its segmenter differs from {checkpoint} at {key!r}; re-run evaluate")
    return Trained(predictor, cls, kwargs, ood_state, refusal)


def _call(kwargs: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items())


def model_source(trained: Trained) -> str:
    """model.py: the architecture's source (or smp import) and ``Model`` with pinned constructor arguments."""
    cls = trained.cls
    if cls.__module__.startswith(codegen.PACKAGE + "."):
        roots, base, imports = [cls], cls.__name__, []
    else:
        import segmentation_models_pytorch as smp

        if getattr(smp, cls.__name__, None) is not cls:
            raise ValueError(f"package: {cls.__module__}.{cls.__name__} is not exported by segmentation_models_pytorch")
        roots, base, imports = [], f"smp.{cls.__name__}", ["import segmentation_models_pytorch as smp"]
    eval_note = ("        # Eval mode from the start: the FLOPs server runs Model() as constructed on one image, and\n"
                 "        # BatchNorm in training mode cannot normalise a batch of one 1x1 map (e.g. DeepLabV3+'s pooling).\n"
                 "        self.eval()\n")
    if trained.refusal is None:
        head = f"class Model({base}):\n    \"\"\"The trained {cls.__name__}: (B, 3, h, w) normalised -> (B, C, h, w) logits.\"\"\""
        init = f"        super().__init__({_call(trained.kwargs)})\n"
    else:
        roots.append(OODSegmenter)
        r, d = trained.refusal, trained.refusal["features"]
        head = (f"class Model(OODSegmenter):\n    \"\"\"The trained {cls.__name__} with its calibrated refusal: "
                "(B, 3, h, w) normalised ->\n    ((B, C, h, w) logits, (B,) include), include False = refused.\"\"\"")
        init = (f"        super().__init__({base}({_call(trained.kwargs)}), method={r['method']!r},\n"
                f"                         temperature={r['temperature']!r}, feature_layer={r['feature_layer']!r})\n"
                "        # The feature Gaussian at its fitted size, so Model() runs before weights are loaded.\n"
                f"        self.maha_mean = torch.zeros({d})\n        self.maha_whitening = torch.zeros({d}, {d})\n")
        imports.append("import torch")
    imp, body = codegen.bundle(roots)
    tail = f"{head}\n\n    def __init__(self) -> None:\n{init}{eval_note}"
    doc = (f"The submitted architecture (generated by the cityseg package stage; do not edit).\n\n"
           f"Model() takes no arguments; load model.pt (or model.pth) with load_state_dict(strict=True).\n"
           f"forward is the network alone: inputs at the training size {trained.settings['input_size']}, "
           f"normalised (x/255 - 0.5) / 0.5.\n")
    return codegen.render(doc, [*imp, *imports], body, tail)


def predict_source(trained: Trained) -> str:
    """predict.py: `serve.main` with everything it uses, ``SETTINGS`` pinned."""
    imports, body = codegen.bundle([serve.main], {"SETTINGS": trained.settings})
    doc = ("Course entrypoint (2025-26): python /app/predict.py [--data /data] [--output /output] "
           "[--model /app/model.pt]\n\nWrites one single-channel uint8 PNG of trainIds per input PNG, same name, "
           "original size" + (", and predictions.csv (image_name,include)" if trained.refusal else "") +
           ". Generated by the cityseg package stage from cityseg/serve.py; do not edit.\n")
    return codegen.render(doc, imports, body, 'if __name__ == "__main__":\n    sys.exit(main())')


def process_data_source(trained: Trained) -> str:
    """process_data.py of the 2024-25 zip: `serve.preprocess` / `serve.postprocess`, ``SETTINGS`` pinned."""
    imports, body = codegen.bundle([serve.preprocess, serve.postprocess], {"SETTINGS": trained.settings})
    doc = ("2024-25 course format: preprocess(PIL image) -> (1, 3, h, w) tensor; postprocess(prediction, (H, W)) "
           "-> (H, W) uint8 trainIds.\n\nGenerated by the cityseg package stage from cityseg/serve.py; do not edit.\n")
    return codegen.render(doc, imports, body)


def requirements(*sources: str) -> list[str]:
    """``dist==version`` for each third-party top-level module the sources import, as installed here.

    torch and torchvision come with the base image. smp models also need timm (their encoders).
    """
    dists = importlib.metadata.packages_distributions()
    names = set()
    for source in sources:
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".")[0])
    wanted = set()
    for name in sorted(names - set(sys.stdlib_module_names) - {"__future__", "model"}):
        if name not in dists:
            raise ValueError(f"package: no installed distribution provides the module {name!r}")
        wanted |= {re.sub(r"[-_.]+", "-", d).lower() for d in dists[name]}  # PEP 503 names
    if "segmentation-models-pytorch" in wanted:
        wanted.add("timm")
    return [f"{d}=={importlib.metadata.version(d)}" for d in sorted(wanted) if d.lower() not in BASE_IMAGE_HAS]


def _zip_bytes(files: dict[str, bytes]) -> bytes:
    """A zip with fixed timestamps, so the same submission gives the same bytes (DVC caches it)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            # Weights barely compress; deflating them only costs time.
            info.compress_type = zipfile.ZIP_STORED if name.endswith(".pth") else zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return buf.getvalue()


def dockerfile(base_image: str) -> str:
    return (f"# The 2025-26 submission image (generated by the cityseg package stage; do not edit).\n"
            f"FROM {base_image}\n"
            "# Only what model.py and predict.py import, at the pipeline's versions; torch comes with the image.\n"
            "COPY requirements.txt /app/requirements.txt\n"
            "RUN pip install --no-cache-dir -r /app/requirements.txt\n"
            "COPY model.py predict.py model.pt /app/\n"
            "WORKDIR /app\n"
            'ENTRYPOINT ["python", "/app/predict.py"]\n')


def readme(benchmark: str, settings: dict[str, Any], reqs: list[str], base_image: str, torch_version: str) -> str:
    """The submission's README: what each file is for and the exact commands."""
    tag, refusal = f"cityseg-{benchmark}", settings["refusal"]
    h, w = settings["input_size"]
    return f"""# Submission `{benchmark}`

Generated by `dvc repro package@{benchmark}` from `models/{benchmark}/best.pt`; regenerate rather than edit.
`selftest.json` records the stage's self-test: predict.py and the zip, run without cityseg, give the
pipeline's masks bit for bit, the Dice of `metrics/{benchmark}.json`, and `Model()` counts its `gflops`.

| file | for |
|---|---|
| `Dockerfile`, `model.py`, `predict.py`, `model.pt`, `requirements.txt` | the 2025-26 servers (a Docker image saved as a .tar) |
| `submission_{benchmark}.zip` | the 2024-25 servers (`model.py`, `model.pth`, `process_data.py`) |

## Docker (2025-26)

```bash
docker build -t {tag} submissions/{benchmark}
docker run --rm --network none -v "$PWD/images":/data:ro -v "$PWD/output":/output {tag}
docker save -o submission_{benchmark}.tar {tag}
```

`images/` holds the PNGs to segment; `output/` receives one single-channel uint8 PNG of trainIds per image (same
name, original size){", and `predictions.csv` (`image_name,include`; `False` = refused)" if refusal else ""}. Add
`--gpus all` to `docker run` for a GPU. `python -m cityseg.submit build {benchmark}` (from the repository root)
builds the image, runs it offline on the self-test's images and compares its masks with the local predict.py.

Without Docker: `python predict.py --data images --output output --model model.pt`.

## What runs where

- predict.py / process_data.py: read the PNG as RGB (RGBA drops alpha, grayscale and palette expand), resize
  to {h}x{w} (cv2 bilinear), normalise `(x/255 - 0.5) / 0.5`, run `Model()` in float32, upsample the logits
  bilinearly to the image's size, drop predicted classes under {settings["min_area"]:g} of the image
  (small-class removal) and take the arg-max.
- `Model.forward` is the network alone{" plus the image-level refusal" if refusal else ""}: the resize is not in it,
  so the FLOPs server counts the network at its full 1x3x1024x2048 input, the `gflops` the metrics report.
- Installed on `{base_image}` (its torch is used; the pipeline ran torch {torch_version}):
  {", ".join(f"`{r}`" for r in reqs) or "nothing"}.
"""


def write_package(out: str | Path, benchmark: str, trained: Trained, base_image: str) -> list[str]:
    """Write every submission file of ``benchmark`` into the folder ``out``; returns their names."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model_py, predict_py = model_source(trained), predict_source(trained)
    weights = io.BytesIO()
    torch.save(trained.state, weights)
    reqs = requirements(model_py, predict_py)
    files = {"model.py": model_py, "predict.py": predict_py, "model.pt": weights.getvalue(),
             "requirements.txt": "\n".join(reqs) + "\n", "Dockerfile": dockerfile(base_image),
             ".dockerignore": "*\n!model.py\n!predict.py\n!model.pt\n!requirements.txt\n",
             "README.md": readme(benchmark, trained.settings, reqs, base_image, torch.__version__),
             f"submission_{benchmark}.zip": _zip_bytes({"model.py": model_py.encode(), "model.pth": weights.getvalue(),
                                                        "process_data.py": process_data_source(trained).encode()})}
    for name, data in files.items():
        (out / name).write_bytes(data if isinstance(data, bytes) else data.encode())
    return sorted(files)
