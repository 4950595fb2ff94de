"""How a general (pretrained) model does on scans it has never seen: one pass, then refinement.

    python benchmarks/generalization.py [--model general] [--cases PATTERN ...] [--chunk-passes 5]
                                        [--network-cap 60] [--flat-cap 200] [--throughput-patterns M]
                                        [--out-name generalization] [--results-dir DIR] [--quick]

Every case is a simulated scan whose object and probe are drawn from the procedural families
(ptychopinn.simulation.families) with seeds of their own, ``np.random.default_rng([12345, draw])``,
disjoint from the pretraining streams (those seed ``[seed, split, index]``, three entries):
- held-out object families (each of HELD_OUT_OBJECT_FAMILIES) with a zone-plate and a pupil probe
  (training probe families), group "held_out_objects";
- the held-out probe family (kb_mirror) with training object families, group "held_out_probe";
- conditions, each a variant of one of those cases with the same draw (the same probe; the object
  too where its size stays the same), group "conditions": dose 1e4 (the others are at 1e6), a
  low-overlap scan (step 0.6 × the probe's diameter, against 0.3), and a scan of about 3000
  patterns (the others have about 300; not in --quick).
The step is a fraction of the probe's diameter (the disk with the probe's effective area), the
object just large enough for a square raster of that many positions (simulate scans the object
minus half a patch on each side), jitter 0.15 × the step, N = the model's patch size.

Per case: the one pass's phase and amplitude SSIM, phase PSNR and FRC 0.5 / half-bit cutoffs
(ptychopinn.evaluate, fractions of Nyquist), its wall time (best of --repeats calls after a first
one, stitching included) and patterns/s; the same scores of the network's fixed input alone (each
pattern's back-projected estimate, ptychopinn.physics.backprojection, stitched as the network's
patches are: what the network adds is its one pass minus this); the object's phase span (1st to
99th percentile, rad: phase SSIM is scored against that range, so a weak phase object's small
low-frequency errors weigh heavily); then refinement in chunks of --chunk-passes passes from the
network's result (up to --network-cap passes, stopped at phase SSIM 0.95) and from a flat object
(always to --flat-cap passes: "refinement from flat run to convergence"), scored after every chunk.
Each chunk is one ``refine`` call with the default options (optimiser chosen by the dose), started
from the previous chunk's object: what a user refining in steps and looking after each gets; the
first chunk from the network keeps the default start check (a flat rival under Adam), later chunks
trust their start. Wall time counts the refine calls only (not the scoring), each call's set-up
included (its illumination footprint costs about one pass: a user refining in steps pays it too);
from the network it includes the one pass. Passes to a threshold are multiples of the chunk.

Writes benchmarks/results/<out-name>_<cpu|gpu>.{json,md} (--results-dir elsewhere): every number,
the machine, and a table with one row per case and the medians of the two held-out groups.
--quick is a smoke configuration for tests and CI (seconds with a tiny model): about 36 patterns
per scan, 2-pass chunks, caps of 4 passes, the first one-pass call timed, no 3000-pattern case;
its results are named generalization_quick unless --out-name is given.
"""

from __future__ import annotations

import argparse
import fnmatch
import math
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, machine_description, print_json, timed, write_results  # noqa: E402

from ptychopinn.api import evaluate, reconstruct  # noqa: E402
from ptychopinn.config import InferenceConfig  # noqa: E402
from ptychopinn.model.general import effective_area_fraction  # noqa: E402
from ptychopinn.model.trained import TrainedModel, load_model  # noqa: E402
from ptychopinn.physics.backprojection import backproject  # noqa: E402
from ptychopinn.reconstruction.refine import RefineOptions, refine  # noqa: E402
from ptychopinn.reconstruction.stitch import Stitcher  # noqa: E402
from ptychopinn.simulation import families  # noqa: E402
from ptychopinn.simulation.simulate import simulate  # noqa: E402

# Case draws seed np.random.default_rng([DRAW_SEED, draw]); pretraining seeds [seed, split, index]
DRAW_SEED = 12345
THROUGHPUT_DRAW = 1000  # the throughput scan's draw, after every case's
THRESHOLDS = (0.9, 0.95)
PHOTONS = 1e6
LOW_DOSE = 1e4
# scan step ÷ probe diameter: 0.3 is 70 % linear overlap; the low-overlap case steps 0.6, past the
# "0.5 × the diameter or larger" of issue 26
STEP_PER_DIAMETER = 0.3
LOW_OVERLAP_STEP_PER_DIAMETER = 0.6
MIN_STEP = 1.0  # px: a small probe's 0.3 × diameter would otherwise scan sub-pixel steps
JITTER_PER_STEP = 0.15  # as the corpus's default
PATTERNS, LARGE_PATTERNS, QUICK_PATTERNS = 300, 3000, 36
SCAN_MARGIN = 1.0  # px simulate keeps between a patch and the object's edge (scan_region)
PROBES_WITH_HELD_OUT_OBJECTS = ("zone_plate", "pupil")
OBJECTS_WITH_HELD_OUT_PROBE = ("dead_leaves", "cells", "natural")
MEDIAN_GROUPS = {"held_out_objects": "held-out objects, training probes",
                 "held_out_probe": "held-out probe family, training objects"}
SCORES = ("phase_ssim", "amplitude_ssim", "phase_psnr", "frc_0_5", "frc_half_bit")


@dataclass(frozen=True)
class CaseSpec:
    """One benchmark scan: what is drawn (``draw`` seeds the probe, then the object) and how it
    is scanned."""

    name: str
    group: str  # held_out_objects | held_out_probe | conditions
    object_family: str
    probe_family: str
    draw: int
    photons: float = PHOTONS
    step_per_diameter: float = STEP_PER_DIAMETER
    patterns: int = PATTERNS  # about: a square raster of round(sqrt(patterns)) per side


@dataclass(frozen=True)
class RunConfig:
    chunk_passes: int = 5
    network_cap: int = 60
    flat_cap: int = 200
    repeats: int = 2  # timed one-pass calls after the first


QUICK_CONFIG = RunConfig(chunk_passes=2, network_cap=4, flat_cap=4, repeats=0)


# ------------------------------------------------------------------------------------------------
# Cases
# ------------------------------------------------------------------------------------------------


def case_specs(quick: bool = False) -> list[CaseSpec]:
    """Every case, in table order; --quick: the same without the large scan, each ~36 patterns."""
    base: list[CaseSpec] = []
    for obj in families.HELD_OUT_OBJECT_FAMILIES:
        for probe in PROBES_WITH_HELD_OUT_OBJECTS:
            base.append(CaseSpec(f"{obj}-{probe}", "held_out_objects", obj, probe, draw=len(base)))
    for probe in families.HELD_OUT_PROBE_FAMILIES:
        for obj in OBJECTS_WITH_HELD_OUT_PROBE:
            base.append(CaseSpec(f"{obj}-{probe}", "held_out_probe", obj, probe, draw=len(base)))
    named = {spec.name: spec for spec in base}
    conditions = [
        _variant(named["natural_held_out-zone_plate"], "dose1e4", photons=LOW_DOSE),
        _variant(named["circuit-zone_plate"], "low_overlap", step_per_diameter=LOW_OVERLAP_STEP_PER_DIAMETER),
    ]
    if not quick:
        conditions.append(_variant(named["siemens_star-pupil"], f"{LARGE_PATTERNS}", patterns=LARGE_PATTERNS))
    specs = base + conditions
    return [replace(spec, patterns=QUICK_PATTERNS) for spec in specs] if quick else specs


def _variant(spec: CaseSpec, suffix: str, **changes) -> CaseSpec:
    """``spec`` under other conditions, with its draw: only the condition changes."""
    return replace(spec, name=f"{spec.name}-{suffix}", group="conditions", **changes)


def select_cases(specs: list[CaseSpec], patterns: list[str] | None) -> list[CaseSpec]:
    """The cases whose name matches any of the shell-style ``patterns`` (all without any)."""
    if not patterns:
        return specs
    chosen = [s for s in specs if any(fnmatch.fnmatchcase(s.name, p) for p in patterns)]
    if not chosen:
        raise SystemExit(f"no case matches {patterns}; the cases are: {', '.join(s.name for s in specs)}")
    return chosen


def probe_diameter(probe: np.ndarray) -> float:
    """Diameter (px) of the disk with the probe's effective area, (Σ|P|²)² / Σ|P|⁴."""
    area = effective_area_fraction(probe) * probe.size
    return 2.0 * math.sqrt(area / math.pi)


def object_size_for(n: int, step: float, per_side: int) -> int:
    """The smallest object over which simulate's raster holds ``per_side`` positions a side."""
    return math.ceil(n + 2 * SCAN_MARGIN + (per_side - 1) * step)


def build_scan(spec: CaseSpec, n: int):
    """(simulated scan, its geometry) of ``spec`` at patch size ``n``: the probe is drawn first,
    so that a variant's probe is its base case's whatever the object size."""
    rng = np.random.default_rng([DRAW_SEED, spec.draw])
    probe = families.random_probe(spec.probe_family, n, rng)
    diameter = probe_diameter(probe)
    step = max(spec.step_per_diameter * diameter, MIN_STEP)
    size = object_size_for(n, step, max(round(math.sqrt(spec.patterns)), 2))
    obj = families.random_object(spec.object_family, size, rng)
    scan = simulate(object=obj, probe=probe, size=size, n=n, step=step, jitter=JITTER_PER_STEP * step,
                    photons=spec.photons, seed=spec.draw)
    geometry = {"patterns": scan.n_patterns, "object_size": size, "step": round(step, 3),
                "probe_diameter": round(diameter, 2), "step_per_diameter": round(step / diameter, 3)}
    return scan, geometry


# ------------------------------------------------------------------------------------------------
# Measurements
# ------------------------------------------------------------------------------------------------


def scores(reconstruction, scan) -> dict:
    metrics = evaluate(reconstruction, scan)
    return {key: round(float(metrics[key]), 4) for key in SCORES}


def timed_one_pass(model: TrainedModel, scan, repeats: int):
    """(the network's reconstruction, its timing): the first call pays one-time costs (lazy
    initialisation) that a session reconstructing many scans pays once, so the time is the best of
    ``repeats`` calls after it (the first's when ``repeats`` is 0); stitching included."""
    start = time.perf_counter()
    result = reconstruct(model, scan)
    first_s = time.perf_counter() - start
    seconds = timed(lambda: reconstruct(model, scan), repeats) if repeats else first_s
    return result, {"seconds": round(seconds, 4), "first_call_seconds": round(first_s, 4),
                    "patterns_per_second": round(scan.n_patterns / seconds, 1)}


def one_pass(model: TrainedModel, scan, repeats: int):
    """(the network's reconstruction, its scores and timing)."""
    result, timing = timed_one_pass(model, scan, repeats)
    return result, {**scores(result, scan), **timing}


def backprojection_alone(inference: InferenceConfig, scan):
    """The network's fixed input alone, no network: each pattern's back-projected estimate under
    the scan's probe (bad pixels at 0, as the network reads them), stitched with the model's
    ``inference`` weighting and the per-pattern phase alignment that
    :func:`ptychopinn.api.reconstruct` uses at C = 1. Its real scale is left as it comes: scores
    fit the amplitude's scale."""
    amplitudes = np.asarray(scan.diffraction, dtype=np.float64)
    if scan.valid_pixels is not None:
        amplitudes = amplitudes * scan.valid_pixels
    stitcher = Stitcher(scan.positions_xy, scan.patch_size, crop=inference.stitch_crop,
                        weighting=inference.stitch_weighting.value, probe=scan.probe, align_phase=True)
    stitcher.add(backproject(amplitudes, scan.probe), scan.positions_xy)
    return stitcher.result()


def phase_span(scan) -> float:
    """The object's phase range, 1st to 99th percentile (rad)."""
    low, high = np.percentile(np.angle(scan.object), [1, 99])
    return round(float(high - low), 3)


def chunked_refinement(scan, start, start_scores: dict | None, config: RunConfig, cap: int,
                       stop_at: float | None) -> dict:
    """Refine ``start`` (None: flat) ``config.chunk_passes`` passes at a time up to ``cap``,
    scoring after every chunk; stops early once phase SSIM reaches ``stop_at``. The curve's
    seconds are the refine calls' alone; a given start is its point at 0 passes."""
    curve = [] if start is None else [{"passes": 0, "seconds": 0.0, **start_scores}]
    current, passes, seconds, first = start, 0, 0.0, None
    while passes < cap and not (stop_at is not None and curve and curve[-1]["phase_ssim"] >= stop_at):
        chunk = min(config.chunk_passes, cap - passes)
        # the first chunk from a given start checks it against a flat rival (the default);
        # a later chunk's start is refinement's own result
        options = RefineOptions(passes=chunk, flat_check_passes=None if first is None else 0)
        began = time.perf_counter()
        result = refine(scan, current, options)
        seconds += time.perf_counter() - began
        first = result if first is None else first
        current, passes = result.reconstruction, passes + chunk
        curve.append({"passes": passes, "seconds": round(seconds, 4), **scores(current, scan)})
    return {"optimizer": first.optimizer if first else None, "start_kept": first.start if first else None,
            "curve": curve, "passes_run": passes, "final_phase_ssim": curve[-1]["phase_ssim"]}


def to_threshold(curve: list[dict], threshold: float, offset_s: float = 0.0) -> dict | None:
    """Passes and wall time (plus ``offset_s``, the one pass for a network start) at the first
    point of ``curve`` at phase SSIM ``threshold`` or above; None when it is never reached."""
    point = next((p for p in curve if p["phase_ssim"] >= threshold), None)
    if point is None:
        return None
    return {"passes": point["passes"], "seconds": round(offset_s + point["seconds"], 4)}


def with_thresholds(run: dict, offset_s: float = 0.0) -> dict:
    return {**run, **{f"to_{t}": to_threshold(run["curve"], t, offset_s) for t in THRESHOLDS}}


def network_sooner(network: dict | None, flat: dict | None) -> bool | None:
    """Whether network + refinement reaches a threshold in less wall time than refinement from
    flat; None when neither reaches it."""
    if network is None and flat is None:
        return None
    if network is None or flat is None:
        return network is not None
    return network["seconds"] < flat["seconds"]


def run_case(model: TrainedModel, spec: CaseSpec, config: RunConfig) -> dict:
    scan, geometry = build_scan(spec, model.patch_size)
    network, network_scores = one_pass(model, scan, config.repeats)
    from_network = with_thresholds(
        chunked_refinement(scan, network, scores_only(network_scores), config, config.network_cap, max(THRESHOLDS)),
        offset_s=network_scores["seconds"])
    from_flat = with_thresholds(chunked_refinement(scan, None, None, config, config.flat_cap, None))
    comparison = {f"network_sooner_to_{t}": network_sooner(from_network[f"to_{t}"], from_flat[f"to_{t}"])
                  for t in THRESHOLDS}
    comparison["one_pass_minus_flat_at_cap"] = round(network_scores["phase_ssim"] - from_flat["final_phase_ssim"], 4)
    alone = scores(backprojection_alone(model.settings.inference, scan), scan)
    return {**asdict(spec), **geometry, "phase_span": phase_span(scan), "one_pass": network_scores,
            "backprojection_alone": alone, "from_network": from_network, "from_flat": from_flat,
            "comparison": comparison}


def scores_only(measured: dict) -> dict:
    return {key: measured[key] for key in SCORES}


def throughput_case(patterns: int) -> CaseSpec:
    """The throughput scan: a held-out object under a zone-plate probe, ``patterns`` positions."""
    return CaseSpec(f"throughput-{patterns}", "throughput", families.HELD_OUT_OBJECT_FAMILIES[0], "zone_plate",
                    draw=THROUGHPUT_DRAW, patterns=patterns)


def throughput(model: TrainedModel, patterns: int, repeats: int) -> dict:
    """One-pass patterns/s on a single large scan (:func:`throughput_case`), no refinement or
    scoring: the detector-rate question."""
    spec = throughput_case(patterns)
    scan, geometry = build_scan(spec, model.patch_size)
    _, timing = timed_one_pass(model, scan, repeats)
    return {**asdict(spec), **geometry, **timing}


def sooner_counts(cases: list[dict]) -> dict:
    """Per threshold: on how many cases network + refinement gets there sooner than refinement
    from flat (yes), later or never (no), or neither gets there."""
    counts = {}
    for t in THRESHOLDS:
        verdicts = [c["comparison"][f"network_sooner_to_{t}"] for c in cases]
        counts[f"to_{t}"] = {"yes": verdicts.count(True), "no": verdicts.count(False),
                             "neither_reached": verdicts.count(None)}
    return counts


def medians(cases: list[dict]) -> dict:
    """Per held-out group: the median one-pass scores and patterns/s, and the median phase SSIM of
    the back-projection alone (float64)."""
    summary = {}
    for group in MEDIAN_GROUPS:
        members = [c for c in cases if c["group"] == group]
        if members:
            summary[group] = {"cases": len(members), **{
                key: _median([c["one_pass"][key] for c in members]) for key in (*SCORES, "patterns_per_second")},
                "backprojection_phase_ssim": _median([c["backprojection_alone"]["phase_ssim"] for c in members])}
    return summary


def _median(values: list[float]) -> float:
    return round(float(np.median(np.array(values, dtype=np.float64))), 4)


# ------------------------------------------------------------------------------------------------
# Table
# ------------------------------------------------------------------------------------------------


TABLE_HEADER = ("| case | group | photons | patterns | step ÷ probe diameter | object phase span (rad) | "
                "back-projection alone: phase SSIM | one pass: phase SSIM | "
                "amplitude SSIM | phase PSNR (dB) | FRC 0.5 (× Nyquist) | patterns/s | network + refine → 0.9 | → 0.95 | "
                "flat → 0.9 | → 0.95 | flat at its cap | one pass − flat at cap | 0.95 sooner from the network |")


def reached(entry: dict | None, run: dict) -> str:
    if entry is None:
        return f"not reached ({run['final_phase_ssim']:.3f})"
    return f"{entry['passes']} passes, {entry['seconds']:.2f} s"


def dose(photons: float) -> str:
    return f"{photons:.0e}".replace("e+0", "e")


def yes_no(value: bool | None) -> str:
    return "–" if value is None else ("yes" if value else "no")


def case_row(c: dict) -> str:
    p, net, flat = c["one_pass"], c["from_network"], c["from_flat"]
    cells = [c["name"], c["group"], dose(c["photons"]), str(c["patterns"]), f"{c['step_per_diameter']:.2f}",
             f"{c['phase_span']:.2f}", f"{c['backprojection_alone']['phase_ssim']:.3f}", f"{p['phase_ssim']:.3f}",
             f"{p['amplitude_ssim']:.3f}", f"{p['phase_psnr']:.1f}", f"{p['frc_0_5']:.2f}",
             f"{p['patterns_per_second']:,.0f}", reached(net["to_0.9"], net), reached(net["to_0.95"], net),
             reached(flat["to_0.9"], flat), reached(flat["to_0.95"], flat),
             f"{flat['final_phase_ssim']:.3f} ({flat['passes_run']} passes)",
             f"{c['comparison']['one_pass_minus_flat_at_cap']:+.3f}", yes_no(c["comparison"]["network_sooner_to_0.95"])]
    return "| " + " | ".join(cells) + " |"


def median_row(group: str, m: dict) -> str:
    cells = [f"median, {MEDIAN_GROUPS[group]} ({m['cases']})", "", "", "", "", "",
             f"{m['backprojection_phase_ssim']:.3f}", f"{m['phase_ssim']:.3f}",
             f"{m['amplitude_ssim']:.3f}", f"{m['phase_psnr']:.1f}", f"{m['frc_0_5']:.2f}",
             f"{m['patterns_per_second']:,.0f}", *[""] * 7]
    return "| " + " | ".join(cells) + " |"


def markdown(cases: list[dict], summary: dict, header: dict, throughput_run: dict | None) -> str:
    lines = [f"# one pass of a general model on unseen scans, then refinement (model {header['model']}, "
             f"N = {header['patch_size']}{', quick' if header['quick'] else ''})", "",
             f"{header['machine']}. Refinement in chunks of {header['config']['chunk_passes']} passes, at most "
             f"{header['config']['network_cap']} from the network (stopped at phase SSIM 0.95) and "
             f"{header['config']['flat_cap']} from flat; times from the network include the one pass; "
             "\"not reached\" gives the run's final phase SSIM.", "",
             TABLE_HEADER, "|" + "---|" * TABLE_HEADER.count(" | ") + "---|"]
    lines += [case_row(c) for c in cases]
    lines += [median_row(group, m) for group, m in summary.items()]
    for t, count in sooner_counts(cases).items():
        lines += ["", f"Network + refinement reaches phase SSIM {t.removeprefix('to_')} sooner than refinement from "
                  f"flat on {count['yes']} of {len(cases)} cases, later or never on {count['no']}; neither reaches "
                  f"it on {count['neither_reached']}."]
    if throughput_run:
        lines += ["", f"Throughput: {throughput_run['patterns']:,} patterns in {throughput_run['seconds']:.2f} s, "
                  f"{throughput_run['patterns_per_second']:,.0f} patterns/s (one pass with stitching)."]
    return "\n".join(lines)


def machine_line() -> str:
    machine = machine_description()
    return (machine["cuda"] + f" ({machine['cpu_count']} CPU cores)" if machine["cuda"]
            else f"{machine['cpu_count']} CPU cores, {machine['torch_threads']} torch threads")


# ------------------------------------------------------------------------------------------------
# Entry point
# ------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="general", help="model.pinn, its run directory, or a shipped "
                        "model's name [%(default)s]")
    parser.add_argument("--quick", action="store_true", help="tiny smoke configuration (tests, CI)")
    parser.add_argument("--cases", nargs="+", metavar="PATTERN", help="only the cases matching these "
                        "shell-style patterns (e.g. 'siemens_star-*' '*kb_mirror*')")
    parser.add_argument("--chunk-passes", type=int, help="refinement passes between scorings [5; quick 2]")
    parser.add_argument("--network-cap", type=int, help="most refinement passes from the network [60; quick 4]")
    parser.add_argument("--flat-cap", type=int, help="refinement passes from flat [200; quick 4]")
    parser.add_argument("--repeats", type=int, help="timed one-pass calls after the first [2; quick 0]")
    parser.add_argument("--throughput-patterns", type=int, default=0, metavar="M",
                        help="also time one pass on a scan of about M patterns (e.g. 50000 on a GPU) [off]")
    parser.add_argument("--out-name", help="results name [generalization; quick: generalization_quick]")
    parser.add_argument("--results-dir", type=Path, default=RESULTS, help="where results go [benchmarks/results]")
    args = parser.parse_args(argv)
    defaults = QUICK_CONFIG if args.quick else RunConfig()
    config = RunConfig(*(getattr(args, name) if getattr(args, name) is not None else getattr(defaults, name)
                         for name in ("chunk_passes", "network_cap", "flat_cap", "repeats")))
    if min(config.chunk_passes, config.network_cap, config.flat_cap) < 1 or config.repeats < 0:
        parser.error("chunk passes and caps must be at least 1, repeats at least 0")
    args.out_name = args.out_name or ("generalization_quick" if args.quick else "generalization")
    return args, config


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; returns the payload written (with the result files' paths)."""
    args, config = parse_args(argv)
    model = load_model(args.model)
    specs = select_cases(case_specs(args.quick), args.cases)
    cases = []
    for spec in specs:
        cases.append(run_case(model, spec, config))
        print(case_row(cases[-1]), flush=True)
    throughput_run = throughput(model, args.throughput_patterns, config.repeats) if args.throughput_patterns else None
    summary = medians(cases)
    header = {"model": str(args.model), "model_source": str(model.source), "patch_size": model.patch_size,
              "generator": model.settings.model.generator.value,
              "quick": args.quick, "config": asdict(config), "thresholds": list(THRESHOLDS)}
    payload = {**header, "draw_seed": DRAW_SEED, "cases": cases, "medians": summary,
               "network_sooner": sooner_counts(cases), "throughput": throughput_run,
               "command": "python benchmarks/generalization.py " + " ".join(sys.argv[1:] if argv is None else argv)}
    text = markdown(cases, summary, {**header, "machine": machine_line()}, throughput_run)
    json_path, md_path = write_results(args.out_name, payload, text, args.results_dir)
    print_json({k: v for k, v in payload.items() if k != "cases"})
    print(f"results: {json_path}, {md_path}")
    return {**payload, "json_path": str(json_path), "markdown_path": str(md_path)}


if __name__ == "__main__":
    main()
