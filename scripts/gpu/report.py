"""Renders the GPU kit's results (results/*.json, see scripts/gpu/run.sh) as Markdown for
docs/benchmarks.md: the headline figures of issue #7 first, then every check with its verdict.
Imported by `kit.py report`; pure (data in, text out)."""

import json


def fmt(value, digits=3):
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "**NO**"
    if isinstance(value, float):
        if value != 0 and (abs(value) < 1e-2 or abs(value) >= 1e6):
            return f"{value:.2e}"
        return f"{value:,.{digits}f}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def headline(results):
    rows = []
    saectl = results.get("forward_saectl", {})
    hf_runs = results.get("forward_hf", {}).get("runs", [])
    eager = next((r for r in hf_runs if r.get("attention") == "eager"), None)
    sdpa = next((r for r in hf_runs if r.get("attention") == "sdpa"), None)
    if saectl.get("tokens_per_s"):
        shape = f"batch {saectl.get('batch')} × seq {saectl.get('seq_len')}, {saectl.get('dtype')}"
        hook = ", ".join(saectl.get("hooks", [])) or "the hook"
        rows.append((f"forward to `{hook}`, saectl", f"{fmt(saectl['tokens_per_s'])} tokens/s",
                     shape))
        for name, run in (("eager", eager), ("sdpa, no soft-capping", sdpa)):
            if run and run.get("tokens_per_s"):
                ratio = saectl["tokens_per_s"] / run["tokens_per_s"]
                rows.append((f"forward to `{hook}`, transformers ({name})",
                             f"{fmt(run['tokens_per_s'])} tokens/s",
                             f"saectl / transformers = **{ratio:.2f}** (target ≥ 1.0)"))
    collect = results.get("collect_l12_16k", {})
    if collect.get("tokens_per_s"):
        rows.append(("`saectl collect`, layer 12, 16k TopK k 32",
                     f"{fmt(collect['tokens_per_s'])} tokens/s",
                     f"time split: {collect.get('time_split', '—')} (target ≥ 100k tokens/s)"))
    train = results.get("train_l12_16k", {})
    if train.get("tokens_per_s") or train.get("peak_gpu_mib_above_idle"):
        rows.append((f"`saectl train` ({train.get('mode')}), layer 12, 16k BatchTopK k 32",
                     f"{fmt(train.get('tokens_per_s'))} tokens/s",
                     f"peak GPU memory {fmt(train.get('peak_gpu_mib_above_idle'))} MiB above idle "
                     f"(target ≥ 100k tokens/s)"))
    if not rows:
        return ""
    lines = ["| measurement | result | notes |", "| --- | ---: | --- |"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines) + "\n"


def checks(results):
    lines = ["| check | verdict | measured | tolerance |", "| --- | --- | --- | --- |"]
    for name, data in sorted(results.items()):
        if not isinstance(data, dict) or not (
                "ok" in data or name.startswith(("parity_", "train_", "collect_topk"))):
            continue
        measured = []
        for key in ("worst_rel_max", "rel_max", "rel_l2", "identical_lists", "mean_recall",
                    "max_rel_value_error", "median_rel_value_error"):
            if key in data:
                measured.append(f"{key} {fmt(data[key])}")
        if "lines" in data and data["lines"]:
            first = data["lines"][0]
            measured.append(f"step 1 rel. loss diff {fmt(first['rel']['loss'])}, "
                            f"L0 {first['l0'][0]:.1f} vs {first['l0'][1]:.1f}")
        if "error" in data:
            measured.append(f"error: {data['error']}")
        tolerance = data.get("tolerance")
        lines.append(f"| `{name}` | {fmt(data.get('ok'))} | {'; '.join(measured) or '—'} | "
                     f"{json.dumps(tolerance) if tolerance is not None else 'reported'} |")
    probe = results.get("topk_probe", {}).get("cases", [])
    for case in probe:
        lines.append(f"| top-k on {case['device']}, {case['tokens']} × {case['d_sae']}, k {case['k']} | "
                     f"{fmt(case['row_topk_ok'] and case['batch_topk_ok'])} | "
                     f"row {fmt(case['row_topk_ms'])} ms, batch {fmt(case['batch_topk_ms'])} ms "
                     f"({case['batch_topk_kept']} kept of {case['batch_topk_expected']}) | exact |")
    for case in results.get("select_probe", {}).get("cases", []):
        lines.append(f"| {case['selection']} selection on {case['device']}, {case['tokens']} × "
                     f"{case['d_sae']}, k {case['k']} | {fmt(case['equal_to_host'])} | "
                     f"device {fmt(case['device_ms'])} ms vs copy + host {fmt(case['host_path_ms'])} ms "
                     f"(dense copy alone {fmt(case['dense_copy_ms'])} ms), {case['active']} active | "
                     f"same active set |")
    return "\n".join(lines) + "\n"


def render(results):
    env = results.get("env", {})
    out = ["# GPU kit results", ""]
    out.append(f"Device: {env.get('gpu') or env.get('device')}; {env.get('saectl')}; kit "
               f"{env.get('kit')}; torch {env.get('torch')}; transformers "
               f"{env.get('transformers')}; {env.get('cpus')} CPUs; model: {env.get('model')} "
               "(random weights, the real config).")
    warm = results.get("warmup", {})
    if warm:
        out.append(f"Warm-up (PTX JIT): first probe run {fmt(warm.get('probe_first_s'))} s, "
                   f"second {fmt(warm.get('probe_second_s'))} s.")
    out += ["", "## Headline figures", "", headline(results) or "(not measured)", "",
            "## Checks", "", checks(results), "", "## Raw results", ""]
    for name, data in sorted(results.items()):
        out.append(f"<details><summary>{name}</summary>\n\n```json\n"
                   f"{json.dumps(data, indent=1)}\n```\n</details>\n")
    return "\n".join(out)
