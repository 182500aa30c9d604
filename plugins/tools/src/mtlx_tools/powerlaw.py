"""Power-law exponents of weight spectra (heavy-tailed self-regularisation, HT-SR).

Martin & Mahoney read the empirical spectral density (ESD) of a layer's
weights as a measure of how well trained it is: the eigenvalues of ``WᵀW``
develop a power-law tail ``p(λ) ∝ λ^-α``; ``α`` in ``[2, 4]`` is read as well
trained, large ``α`` (> 6) as close to random. Rep-MTL (§4.3, App. C) reports
these exponents per decoder and for the backbone.

Procedure, as WeightWatcher and the ``powerlaw`` package do it:

* each weight with two or more dimensions is a matrix ``W`` (N×M); a conv
  weight ``(out, in, kh, kw)`` is either reshaped to ``(out, in·kh·kw)``
  (``conv="reshape"``) or split into ``kh·kw`` matrices ``(out, in)`` whose
  eigenvalues are pooled into one ESD (``conv="slices"``, WeightWatcher's
  default);
* the ESD holds the ``min(N, M)`` non-zero eigenvalues of ``WᵀW`` (the
  squared singular values of ``W``; the other ``M - min(N, M)`` are zero);
* for every candidate ``x_min`` (each eigenvalue but the largest) the
  continuous MLE ``α = 1 + n / Σ ln(λ_i / x_min)`` over the ``n`` eigenvalues
  ``≥ x_min``, and the Kolmogorov–Smirnov distance between the tail and the
  fitted law; ``x_min`` minimises that distance (Clauset, Shalizi & Newman
  2009). The empirical CDF is ``i / n`` as in ``powerlaw`` and WeightWatcher.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch

import mtlx
from mtlx.checkpoint import load_checkpoint
from mtlx.config import flatten, load_toml, resolve
from mtlx.errors import CheckpointError, ConfigError, MtlxError
from mtlx.jsonutil import dumps
from mtlx.registry import Registries

__all__ = [
    "CONV_MODES",
    "GroupSummary",
    "LayerFit",
    "PowerLawFit",
    "PowerLawReport",
    "SkippedLayer",
    "analyze_run",
    "analyze_state_dict",
    "esd",
    "fit_power_law",
    "groups_from_names",
]

CONV_MODES = ("reshape", "slices")

#: Eigenvalues below this fraction of the largest are numerically zero (rank deficiency) and dropped.
_ZERO = 1e-12


@attrs.frozen(kw_only=True)
class PowerLawFit:
    """A power law ``p(λ) ∝ λ^-alpha`` fitted to the ``n_tail`` eigenvalues ``≥ xmin`` (of ``n``)."""

    alpha: float
    xmin: float
    xmax: float
    ks_distance: float
    n_tail: int
    n: int

    @property
    def sigma(self) -> float:
        """Standard error of the MLE ``alpha`` (Clauset et al. Eq. 3.2)."""
        return (self.alpha - 1.0) / math.sqrt(self.n_tail)


def fit_power_law(values: Iterable[float] | np.ndarray) -> PowerLawFit:
    """Fit the tail of ``values`` (positive) by a continuous power law; ``x_min`` by the KS criterion."""
    x = np.sort(np.asarray(values, dtype=np.float64).ravel())
    if x.size < 2 or x[0] <= 0:
        raise ValueError(f"fit_power_law needs at least 2 positive values, got {x.size} (smallest {x[:1]})")
    logs = np.log(x)
    suffix = np.cumsum(logs[::-1])[::-1]  # suffix[i] = sum(logs[i:])
    best: PowerLawFit | None = None
    for i in range(x.size - 1):
        n = x.size - i
        spread = suffix[i] - n * logs[i]
        if spread <= 0:  # every value of the tail equals x_min: no exponent
            continue
        alpha = 1.0 + n / spread
        fitted_cdf = -np.expm1((1.0 - alpha) * (logs[i:] - logs[i]))
        distance = float(np.max(np.abs(fitted_cdf - np.arange(n) / n)))
        if best is None or distance < best.ks_distance:
            best = PowerLawFit(alpha=alpha, xmin=float(x[i]), xmax=float(x[-1]), ks_distance=distance,
                               n_tail=n, n=x.size)
    if best is None:
        raise ValueError(f"fit_power_law: all {x.size} values are equal ({x[0]}); no tail to fit")
    return best


def esd(weight: torch.Tensor, conv: str = "reshape") -> np.ndarray:
    """Sorted non-zero eigenvalues of ``WᵀW`` for a weight of two or more dimensions (see module doc)."""
    if conv not in CONV_MODES:
        raise ConfigError(f"conv must be one of {', '.join(CONV_MODES)}, got {conv!r}")
    if weight.ndim < 2:
        raise ValueError(f"esd needs a weight with >= 2 dimensions, got shape {tuple(weight.shape)}")
    w = weight.detach().to("cpu", torch.float64)
    if weight.ndim == 2 or conv == "reshape":
        mats = w.reshape(w.shape[0], -1).unsqueeze(0)
    else:  # one (out, in) matrix per kernel position
        mats = w.flatten(2).permute(2, 0, 1)
    evals = torch.linalg.svdvals(mats).square().flatten().numpy()
    top = evals.max(initial=0.0)
    return np.sort(evals[evals > top * _ZERO]) if top > 0 else np.empty(0)


# -- a model's layers ----------------------------------------------------------
@attrs.frozen(kw_only=True)
class LayerFit:
    """One weight matrix: its ESD and the power law fitted to the tail."""

    name: str
    group: str
    shape: tuple[int, ...]
    eigenvalues: np.ndarray = attrs.field(eq=False, repr=False)
    fit: PowerLawFit

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "group": self.group, "shape": list(self.shape), "n_evals": self.fit.n,
                **attrs.asdict(self.fit), "sigma": self.fit.sigma}


@attrs.frozen(kw_only=True)
class SkippedLayer:
    """A weight that was not fitted, and why."""

    name: str
    group: str
    shape: tuple[int, ...]
    reason: str


@attrs.frozen(kw_only=True)
class GroupSummary:
    """``alpha`` averaged over a module group's fitted layers (NaN when none could be fitted)."""

    group: str
    layers: int
    skipped: int
    alpha_mean: float
    alpha_std: float


def _is_matrix(value: Any) -> bool:
    return isinstance(value, torch.Tensor) and value.is_floating_point() and value.ndim >= 2


def analyze_state_dict(
    state: Mapping[str, torch.Tensor],
    groups: Mapping[str, str] | None = None,
    *,
    conv: str = "reshape",
    min_evals: int = 10,
) -> tuple[list[LayerFit], list[SkippedLayer]]:
    """Fit every floating-point tensor of >= 2 dims in ``state``; fewer than ``min_evals`` eigenvalues are skipped.

    ``groups`` maps names to module groups; tensors it does not name are left
    out (e.g. buffers), and without it every tensor is in group ``"model"``.
    """
    fits, skipped = [], []
    for name, value in state.items():
        if not _is_matrix(value) or (groups is not None and name not in groups):
            continue
        group = groups[name] if groups is not None else "model"
        shape = tuple(value.shape)
        evals = esd(value, conv)
        if evals.size < min_evals:
            why = "all eigenvalues are zero" if evals.size == 0 else f"{evals.size} eigenvalues < min_evals={min_evals}"
            skipped.append(SkippedLayer(name=name, group=group, shape=shape, reason=why))
            continue
        try:
            fit = fit_power_law(evals)
        except ValueError as error:
            skipped.append(SkippedLayer(name=name, group=group, shape=shape, reason=str(error)))
            continue
        fits.append(LayerFit(name=name, group=group, shape=shape, eigenvalues=evals, fit=fit))
    return fits, skipped


def groups_from_names(names: Iterable[str], tasks: Iterable[str]) -> dict[str, str]:
    """``head:<task>`` for names with ``<task>`` as a dotted component (``heads.seg.1.weight``), else ``backbone``."""
    tasks = list(tasks)
    out = {}
    for name in names:
        parts = name.split(".")
        task = next((t for t in tasks if t in parts), None)
        out[name] = f"head:{task}" if task is not None else "backbone"
    return out


def _groups_from_model(config: Mapping[str, Any], names: list[str], registries: Registries) -> dict[str, str]:
    """Rebuild the run's model (flat ``section.key`` config) and group by ``shared_parameters``/``task_parameters``."""
    from mtlx.build import build_dataset, build_model

    run_config = resolve([config], registries, sections=("dataset", "arch", "backbone", "head"))
    dataset = build_dataset(run_config, registries)
    model = build_model(run_config, dataset.tasks, dataset.input_shape, registries)
    known = model.state_dict()
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(f"the rebuilt model has no tensor {unknown[0]!r} "
                          f"({len(unknown)} of the checkpoint's are unknown to it)")
    params = dict(model.named_parameters())
    name_of = {id(p): n for n, p in params.items()}
    groups = dict.fromkeys(params, "other")
    groups.update({name_of[id(p)]: "backbone" for p in model.shared_parameters()})
    for task in dataset.tasks:
        groups.update({name_of[id(p)]: f"head:{task}" for p in model.task_parameters(task)})
    return groups


@attrs.frozen(kw_only=True)
class PowerLawReport:
    """What ``mtlx analyze powerlaw`` found for one checkpoint."""

    source: str
    conv: str
    min_evals: int
    grouping: str
    layers: list[LayerFit]
    skipped: list[SkippedLayer]

    def groups(self) -> list[GroupSummary]:
        names = list(dict.fromkeys([*(f.group for f in self.layers), *(s.group for s in self.skipped)]))
        out = []
        for group in sorted(names, key=lambda g: (g != "backbone", g)):
            alphas = [f.fit.alpha for f in self.layers if f.group == group]
            out.append(GroupSummary(
                group=group,
                layers=len(alphas),
                skipped=sum(s.group == group for s in self.skipped),
                alpha_mean=statistics.fmean(alphas) if alphas else math.nan,
                alpha_std=statistics.stdev(alphas) if len(alphas) > 1 else math.nan,
            ))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "conv": self.conv,
            "min_evals": self.min_evals,
            "grouping": self.grouping,
            "groups": {g.group: attrs.asdict(g, filter=lambda a, _: a.name != "group") for g in self.groups()},
            "layers": [f.to_dict() for f in self.layers],
            "skipped": [attrs.asdict(s) for s in self.skipped],
        }

    def write(self, out: str | Path, *, plots: bool = True) -> list[Path]:
        """Write ``powerlaw.json`` and (with ``plots``) one ESD plot per group, ``esd_<group>.png``, into ``out``."""
        from .report.plots import require_matplotlib

        if plots:
            require_matplotlib()  # before writing anything
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        path = out / "powerlaw.json"
        path.write_text(dumps(self.to_dict(), indent=2))
        written = [path]
        for group in self.groups():
            fits = [f for f in self.layers if f.group == group.group]
            if fits and plots:
                written.append(_plot_group(fits, group, out / f"esd_{group.group.replace(':', '_')}.png"))
        return written


def analyze_run(
    run_dir: str | Path, *, checkpoint: str = "last", conv: str = "reshape", min_evals: int = 10,
    registries: Registries | None = None,
) -> PowerLawReport:
    """Fit every layer of a run's ``last.pt``/``best.pt`` and group layers into backbone and task heads.

    Groups come from the architecture (the model rebuilt from the run's config
    with :func:`mtlx.build.build_model` and ``registries``: the command line's, or None for the installed
    plugins, loaded afresh); when it cannot be rebuilt here (a plugin or the dataset's files missing) from
    parameter names instead, and ``grouping`` says which and why.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"run directory {run_dir} does not exist")
    if checkpoint not in ("last", "best"):
        raise ConfigError(f"checkpoint must be 'last' or 'best', got {checkpoint!r}")
    path = run_dir / f"{checkpoint}.pt"
    data = load_checkpoint(path)
    try:
        state = data["engine"]["model"]
    except (KeyError, TypeError):
        raise CheckpointError(f"checkpoint {path} holds no model weights (engine.model)") from None
    config = flatten(data["config"]) if "config" in data else load_toml(run_dir / "config.toml")
    names = [n for n, v in state.items() if _is_matrix(v)]
    try:
        groups = _groups_from_model(config, names, registries if registries is not None else
                                    mtlx.PluginManager().registries)
        grouping = "model"
    except MtlxError as error:
        tasks = _tasks(run_dir)
        groups = groups_from_names(state, tasks)
        grouping = f"names (model not rebuilt: {error})"
    fits, skipped = analyze_state_dict(state, groups, conv=conv, min_evals=min_evals)
    return PowerLawReport(source=str(path), conv=conv, min_evals=min_evals, grouping=grouping, layers=fits,
                          skipped=skipped)


def _tasks(run_dir: Path) -> list[str]:
    """The run's task names from ``results.json`` (none when it is missing: all layers count as backbone)."""
    try:
        return list(json.loads((run_dir / "results.json").read_text())["tasks"])
    except (OSError, ValueError, KeyError):
        return []


# -- plots -----------------------------------------------------------------------
def _plot_group(fits: list[LayerFit], group: GroupSummary, path: Path) -> Path:
    """One log-log ESD histogram per layer, with the fitted tail and x_min marked."""
    from .report.plots import new_figure, save_figure

    cols = min(4, len(fits))
    rows = math.ceil(len(fits) / cols)
    fig = new_figure(3.2 * cols, 2.6 * rows + 0.5)
    fig.suptitle(f"{group.group}: mean α = {group.alpha_mean:.2f} over {group.layers} layer(s)")
    for k, f in enumerate(fits):
        ax = fig.add_subplot(rows, cols, k + 1)
        evals = f.eigenvalues
        bins = np.logspace(np.log10(evals[0]), np.log10(evals[-1]), max(10, min(100, evals.size // 5)) + 1)
        ax.hist(evals, bins=bins, density=True, histtype="stepfilled", alpha=0.5)
        x = np.logspace(np.log10(f.fit.xmin), np.log10(f.fit.xmax), 50)
        tail_density = f.fit.n_tail / f.fit.n * (f.fit.alpha - 1) / f.fit.xmin * (x / f.fit.xmin) ** -f.fit.alpha
        ax.plot(x, tail_density, color="C3", label=f"α = {f.fit.alpha:.2f}")
        ax.axvline(f.fit.xmin, color="C3", linestyle="--", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f.name, fontsize=8)
        ax.set_xlabel("eigenvalue of WᵀW", fontsize=7)
        ax.tick_params(which="both", labelsize=6)
        ax.legend(fontsize=7)
    return save_figure(fig, path)
