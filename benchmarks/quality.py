"""Reconstruction quality against wall time, on scans, objects and probes of several kinds.

    python benchmarks/quality.py [--objects grf lines image star] [--probes disk defocused]
                                 [--epochs 50] [--passes 30] [--size 160] [--workdir W] [--reuse]

For every object × probe case (1e6 photons, ~75 % linear overlap, N = 64) it records phase SSIM,
phase PSNR and amplitude SSIM (docs/design/spec.md#evaluation) of:
- the network alone at gridsize 1 and gridsize 2 (default architecture), and the
  predecessor-style gridsize-2 model (joint channels, central head, amplitude input) under the same budget;
- network (gridsize 2, and gridsize 1) + refinement, pass by pass;
- network (gridsize 2) + refinement with the default start check (a flat rival for the first passes,
  counted as work);
- refinement from a flat object (the iterative baseline), pass by pass;
with the passes each refinement needs to reach phase SSIM 0.9 and the wall-time ratio including the
network's inference. Writes a table, JSON, a quality-vs-time plot per case and side-by-side figures
to benchmarks/results/quality_*.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, print_json, timed, write_results  # noqa: E402

from ptychopinn.api import reconstruct, train_with_summary  # noqa: E402
from ptychopinn.config import TrainingConfig, read_settings_file, resolve_settings  # noqa: E402
from ptychopinn.evaluation.data_fit import data_fit  # noqa: E402
from ptychopinn.evaluation.truth import evaluate_against_truth, evaluate_and_plot  # noqa: E402
from ptychopinn.model.trained import MODEL_FILE, SETTINGS_FILE, load_model  # noqa: E402
from ptychopinn.reconstruction.refine import ADAM_FLAT_CHECK_PASSES, RefineOptions, refine  # noqa: E402
from ptychopinn.simulation.simulate import simulate  # noqa: E402

SCORES = ("phase_ssim", "phase_psnr", "amplitude_ssim")
PREDECESSOR = {"model": {"group_encoding": "joint", "head": "central", "input_mode": "amplitude",
                         "amplitude_activation": "sigmoid"}}


def network_run(scan, workdir: Path, gridsize: int, epochs: int, extra: dict | None = None, reuse: bool = False,
                timing_repeats: int = 3):
    """(reconstruction, training seconds, inference seconds, first inference's seconds) of a
    network trained in ``workdir``; with ``reuse``, a model a previous run left there trained with
    the same settings is loaded instead (training seconds None). Inference is timed as the best of
    ``timing_repeats`` calls after the first: a process's first call pays one-time costs (lazy
    initialisation; 2.76 s against 1.41 s on 2 CPU cores, 0.29 s against 0.10 s on an H100), which
    a session reconstructing several scans pays once. With ``timing_repeats`` 0 the first call's
    time is all there is."""
    overrides = {"data": {"gridsize": gridsize}, "training": {"epochs": epochs},
                 "model": {"n_filters_scale": 1}}
    for section, values in (extra or {}).items():
        overrides.setdefault(section, {}).update(values)
    model = reusable_model(workdir, overrides) if reuse else None
    train_s = None
    if model is None:
        start = time.perf_counter()
        model = train_with_summary(scan, workdir, overrides=overrides, quiet=True).model
        train_s = time.perf_counter() - start
    start = time.perf_counter()
    result = reconstruct(model, scan)
    first_s = time.perf_counter() - start
    warm_s = timed(lambda: reconstruct(model, scan), repeats=timing_repeats) if timing_repeats else first_s
    return result, train_s, warm_s, first_s


# Sections that do not shape the trained network: a model is reused whatever they say (runs
# recorded before the refinement section joined the settings have none)
NOT_TRAINING_SECTIONS = ("inference.", "refinement.")


def reusable_model(workdir: Path, overrides: dict):
    """The model a previous run left in ``workdir`` if its config.yaml records exactly the settings
    ``overrides`` give (an automatic batch size matching whatever it resolved to), else None. The
    recorded file, not the bundle's settings, is compared: loading fills settings added since the
    model was trained with today's defaults, which would pass a model trained without them."""
    config = workdir / SETTINGS_FILE
    if not (workdir / MODEL_FILE).exists() or not config.exists():
        return None
    wanted = {key: value for key, value in dotted(resolve_settings(None, overrides).to_plain()).items()
              if not key.startswith(NOT_TRAINING_SECTIONS)}
    recorded = dotted(read_settings_file(config))
    if wanted["training.batch_size"] is None:
        recorded["training.batch_size"] = None
    differing = [key for key, value in wanted.items() if recorded.get(key, "unrecorded") != value]
    if differing:
        print(f"{workdir}: trained with other settings ({', '.join(differing)}); training again", flush=True)
        return None
    print(f"{workdir}: reusing its model", flush=True)
    return load_model(workdir / MODEL_FILE)


def dotted(settings: dict, prefix: str = "") -> dict:
    """Nested settings as {"section.key": value}."""
    flat = {}
    for key, value in settings.items():
        if isinstance(value, dict):
            flat.update(dotted(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def training_seconds(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 1)


def scores(reconstruction, scan) -> dict:
    """docs/design/spec.md#evaluation scores against the truth, and the data misfit (in units of the Poisson floor) that
    a user without a reference sees."""
    metrics = evaluate_against_truth(reconstruction, scan)
    return {**{k: round(float(metrics[k]), 4) for k in SCORES},
            "data_misfit_excess": round(data_fit(scan, reconstruction).excess, 2)}


def scored_refinement(scan, init, passes: int, flat_check: int = 0, optimizer: str = RefineOptions().optimizer.value):
    """(refinement result, scores after every pass); a network start is pass 0 (a start already
    at 0.9 needs no pass). With ``flat_check`` K a flat rival runs the first K passes too: "work"
    counts both."""
    curve = [] if init is None else [{"pass": 0, "work": 0, **scores(init, scan)}]

    def track(index, reconstruction):
        curve.append({"pass": index + 1, "work": index + 1 + min(index + 1, flat_check if init is not None else 0),
                      **scores(reconstruction, scan)})

    options = RefineOptions(passes=passes, flat_check_passes=flat_check, optimizer=optimizer)
    return refine(scan, init, options, on_pass=track), curve


def refinement_curve(scan, init, passes: int, flat_check: int = 0):
    """:func:`scored_refinement` and its seconds. The time comes from a second, identical run
    without scoring: scoring between passes (SciPy, scikit-image) slows the pass after it even
    when its own time is subtracted (0.16 s against 0.09 s per pass here), which made refinement
    look slower than it is."""
    result, curve = scored_refinement(scan, init, passes, flat_check)
    options = RefineOptions(passes=passes, flat_check_passes=flat_check)
    start = time.perf_counter()
    refine(scan, init, options)  # seeded: the same passes, timed alone
    seconds = time.perf_counter() - start
    work = curve[-1]["work"]
    for point in curve:
        point["seconds"] = round(seconds * point["work"] / work, 3)
    return result, curve, seconds


def passes_to(curve: list[dict], threshold: float = 0.9) -> int | None:
    """Passes of work (a checked start's flat rival included) to phase SSIM ``threshold``."""
    return next((p["work"] for p in curve if p["phase_ssim"] >= threshold), None)


def seconds_to_0_9(curve: list[dict], refine_s: float, infer_s: float = 0.0) -> float | None:
    """Wall time to phase SSIM 0.9: the network's inference plus the refinement work needed."""
    needed = passes_to(curve)
    return None if needed is None else infer_s + refine_s * needed / curve[-1]["work"]


def run_case(obj: str, probe: str, args, root: Path) -> dict:
    scan = simulate(obj, size=args.size, n=64, step=args.step, photons=1e6, probe=probe, seed=args.seed)
    case = {"object": obj, "probe": probe, "patterns": scan.n_patterns}
    workdir = root / f"{obj}_{probe}"
    net1, t1, i1, f1 = network_run(scan, workdir / "g1", 1, args.epochs, reuse=args.reuse)
    net2, t2, i2, f2 = network_run(scan, workdir / "g2", 2, args.epochs, reuse=args.reuse)
    old, t3, i3, f3 = network_run(scan, workdir / "g2_predecessor", 2, args.epochs, PREDECESSOR, reuse=args.reuse)
    for key, net, train_s, infer_s, first_s in (("network_g1", net1, t1, i1, f1), ("network_g2", net2, t2, i2, f2),
                                                ("predecessor_g2", old, t3, i3, f3)):
        case[key] = {**scores(net, scan), "train_s": training_seconds(train_s), "infer_s": round(infer_s, 2),
                     "first_infer_s": round(first_s, 2)}
    polished, curve_net, refine_net_s = refinement_curve(scan, net2, args.passes)
    _, curve_net1, refine_net1_s = refinement_curve(scan, net1, args.passes)
    checked, curve_checked, refine_checked_s = refinement_curve(scan, net2, args.passes,
                                                                flat_check=ADAM_FLAT_CHECK_PASSES)
    baseline, curve_flat, refine_flat_s = refinement_curve(scan, None, args.passes)
    for key, curve in (("network_refined", curve_net), ("network_g1_refined", curve_net1),
                       ("network_checked_refined", curve_checked), ("flat_refined", curve_flat)):
        case[key] = {**curve[-1], "curve": curve, "passes_to_0.9": passes_to(curve),
                     "passes_to_0.95": passes_to(curve, 0.95)}
    case["network_checked_refined"]["start"] = checked.start
    flat_time = seconds_to_0_9(curve_flat, refine_flat_s)
    for key, infer_s, curve, refine_s in (("network_g2", i2, curve_net, refine_net_s),
                                          ("network_g1", i1, curve_net1, refine_net1_s),
                                          ("network_g2_checked", i2, curve_checked, refine_checked_s)):
        net_time = seconds_to_0_9(curve, refine_s, infer_s)
        if net_time is not None and flat_time:
            case.setdefault("time_ratio_to_0.9", {})[key] = round(net_time / flat_time, 3)
    evaluate_and_plot(polished.reconstruction, scan, RESULTS / f"quality_{obj}_{probe}",
                      others={"network g2": net2, "flat start": baseline.reconstruction},
                      label="network + refinement")
    plot_case(case, i2, RESULTS / f"quality_{obj}_{probe}" / "quality_vs_time.png")
    return case


def plot_case(case: dict, network_infer_s: float, path: Path) -> None:
    from ptychopinn.atomic import save_figure_atomic
    from ptychopinn.plots import new_figure

    figure = new_figure(5.5, 3.8)
    axis = figure.subplots()
    for key, label, offset in (("network_refined", "network g2 + refinement", network_infer_s),
                               ("network_g1_refined", "network g1 + refinement", case["network_g1"]["infer_s"]),
                               ("network_checked_refined", "network g2 + refinement, start checked",
                                network_infer_s),
                               ("flat_refined", "refinement from flat", 0.0)):
        curve = case[key]["curve"]
        axis.plot([offset + p["seconds"] for p in curve], [p["phase_ssim"] for p in curve], "o-", ms=3,
                  label=label)
    for key, marker in (("network_g1", "s"), ("network_g2", "D"), ("predecessor_g2", "x")):
        axis.plot([case[key]["infer_s"]], [case[key]["phase_ssim"]], marker, label=key.replace("_", " "))
    axis.axhline(0.9, color="gray", ls=":")
    axis.set(xlabel="wall time after training (s)", ylabel="phase SSIM", ylim=(-0.05, 1.0),
             title=f"{case['object']} / {case['probe']} probe")
    axis.legend(fontsize=7)
    save_figure_atomic(figure, path, dpi=110)


def passes(case: dict, threshold: str) -> str:
    keys = ("network_refined", "network_g1_refined", "flat_refined")
    return " / ".join(or_dash(case[k][f"passes_to_{threshold}"]) for k in keys)


def or_dash(value) -> str:
    return "–" if value is None else str(value)


def time_ratios(case: dict) -> str:
    ratios = case.get("time_ratio_to_0.9", {})
    return " / ".join(or_dash(ratios.get(k)) for k in ("network_g2", "network_g1"))


def table(cases: list[dict]) -> str:
    lines = ["| object | probe | net g1 | net g2 | predecessor g2 | net g2 + refine | flat refine | "
             "passes to 0.9 (net g2 / net g1 / flat) | passes to 0.95 (net g2 / net g1 / flat) | "
             "time to 0.9 ÷ flat's (net g2 / net g1) | net g2, start checked: passes to 0.9 (start kept) | "
             "data misfit ÷ noise floor (net g2 / net g2 + refine / flat refine) |",
             "|" + "---|" * 12]
    for c in cases:
        lines.append(
            f"| {c['object']} | {c['probe']} | {c['network_g1']['phase_ssim']:.3f} | "
            f"{c['network_g2']['phase_ssim']:.3f} | {c['predecessor_g2']['phase_ssim']:.3f} | "
            f"{c['network_refined']['phase_ssim']:.3f} | {c['flat_refined']['phase_ssim']:.3f} | "
            f"{passes(c, '0.9')} | {passes(c, '0.95')} | {time_ratios(c)} | "
            f"{or_dash(c['network_checked_refined']['passes_to_0.9'])} ({c['network_checked_refined']['start']}), "
            f"time ÷ flat's {or_dash(c.get('time_ratio_to_0.9', {}).get('network_g2_checked'))} | "
            + " / ".join(f"{c[k]['data_misfit_excess']:.1f}" for k in ("network_g2", "network_refined", "flat_refined"))
            + " |")
    return "\n".join(lines)


def fit_points(cases: list[dict]) -> list[tuple[float, float]]:
    """(data misfit ÷ noise floor, phase SSIM) of every reconstruction the benchmark scored."""
    points = []
    for c in cases:
        points += [(c[k]["data_misfit_excess"], c[k]["phase_ssim"])
                   for k in ("network_g1", "network_g2", "predecessor_g2")]
        for key in ("network_refined", "network_g1_refined", "network_checked_refined", "flat_refined"):
            points += [(p["data_misfit_excess"], p["phase_ssim"]) for p in c[key]["curve"]]
    return points


def plot_fit_vs_quality(points: list[tuple[float, float]], path: Path) -> float:
    """Scatter of phase SSIM against the reference-free data misfit; returns Spearman's ρ."""
    from scipy.stats import spearmanr

    from ptychopinn.atomic import save_figure_atomic
    from ptychopinn.plots import new_figure

    excess, ssim = (list(v) for v in zip(*points, strict=True))
    rho = float(spearmanr(excess, ssim)[0])
    figure = new_figure(6, 4.5)
    axis = figure.subplots()
    axis.scatter(excess, ssim, s=8, alpha=0.5)
    axis.set_xscale("log")
    axis.set(xlabel="data misfit ÷ Poisson noise floor (no reference needed)",
             ylabel="phase SSIM against the truth", title=f"every benchmark reconstruction (Spearman ρ = {rho:.2f})")
    axis.grid(alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure_atomic(figure, path, dpi=120)
    return rho


def add_case_arguments(parser: argparse.ArgumentParser) -> None:
    """The benchmark cases and budgets (shared with quality_spread.py)."""
    parser.add_argument("--objects", nargs="+", default=["grf", "lines", "image", "star"])
    parser.add_argument("--probes", nargs="+", default=["disk", "defocused"])
    parser.add_argument("--epochs", type=int, default=TrainingConfig().epochs,
                        help="training epochs of every network (default: the tool's, %(default)s)")
    parser.add_argument("--passes", type=int, default=30)
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--step", type=float, default=5.0)
    parser.add_argument("--reuse", action="store_true",
                        help="load the networks a previous run trained in --workdir with the same settings "
                             "instead of training them again (their training seconds are then not recorded)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_case_arguments(parser)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/ptychopinn_quality"))
    args = parser.parse_args()
    cases = []
    for obj in args.objects:
        for probe in args.probes:
            cases.append(run_case(obj, probe, args, args.workdir))
            print(table(cases[-1:]), flush=True)
            # after every case, so that a run stopped part way keeps the cases it finished
            payload, paths = save_results(cases, args)
    print_json({k: v for k, v in payload.items() if k != "cases"})
    print(table(cases))
    print(f"results: {paths[0]}, {paths[1]}")


def save_results(cases: list[dict], args) -> tuple[dict, tuple[Path, Path]]:
    rho = plot_fit_vs_quality(fit_points(cases), RESULTS / "quality_data_fit.png")
    payload = {"phase SSIM columns": "network alone / refined, final pass", "epochs": args.epochs,
               "passes": args.passes, "data_misfit_vs_phase_ssim_spearman": round(rho, 3), "cases": cases,
               "command": "python benchmarks/quality.py " + " ".join(sys.argv[1:])}
    header = (f"# reconstruction quality (phase SSIM; {args.epochs} training epochs, "
              f"{args.passes} refinement passes)\n\n")
    return payload, write_results("quality", payload, header + table(cases))


if __name__ == "__main__":
    main()
