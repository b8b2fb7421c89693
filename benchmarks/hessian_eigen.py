"""Benchmark: top-k Hessian eigenpairs of RL losses, three ways.

    python benchmarks/hessian_eigen.py               # full plan (< 15 min on 2 cores)
    python benchmarks/hessian_eigen.py --quick       # N = 1e4 only
    python benchmarks/hessian_eigen.py --one METHOD CASE N [--mode solve|matvecs|verify]   # one child, one JSON line

Methods
    ours          pgsubspaces.hessian.HessianOperator (cached per-chunk gradient graphs) + eigensolvers.lanczos
    ours-arpack   the same operator + eigensolvers.arpack (scipy eigsh, float32)
    curvlinops    curvlinops.HessianLinearOperator over 8192-sample batches, .to_scipy(), scipy eigsh
    naive         one gradient graph over the whole dataset, one double-backward per matvec, scipy eigsh (float32)

Cases
    ppo-actor     PPO actor, Walker2d-v5 sizes, [64, 64] tanh: 5,708 parameters
    sac-critic    SAC critic (two Q-networks), Walker2d-v5 sizes, [256, 256] relu: 144,386 parameters

Every (method, case, N) runs in a fresh subprocess so that its peak RSS (VmHWM) is its own, data included.
Eigsh-based solves are timed without residuals; the residuals ||Hv - lambda v|| of every method are then
computed with the project's HessianOperator (outside the timed region for the baselines; ``lanczos`` and
``arpack`` compute theirs inside, as the project runs them). Results: benchmarks/results/hessian_eigen.json.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import hashlib
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "hessian_eigen.json"
MARKER = "RESULT "

K, TOL = 100, 1e-4
CHUNK = 8192
BUDGET = 1.5e9
THREADS = 2
ROLLOUT_STEPS = 4096  # real Walker2d-v5 transitions; larger N tiles them with jitter
JITTER = 0.01  # jitter std, as a fraction of each feature's std over the rollout
N_TIMED_MATVECS = 20
METHODS = ("ours", "ours-arpack", "curvlinops", "naive")
CASES = ("ppo-actor", "sac-critic")


# ----------------------------------------------------------------------------------------------- child side


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def peak_mb() -> float:
    """Peak resident set size of this process so far (VmHWM), MB."""
    return _status_kb("VmHWM") / 1024


def rss_mb() -> float:
    return _status_kb("VmRSS") / 1024


def rollout(n_steps: int, seed: int = 0):
    """Walker2d-v5 transitions under seeded uniform random actions (numpy arrays)."""
    import numpy as np

    from pgsubspaces.envs import make_env

    env = make_env("Walker2d-v5")
    rng = np.random.default_rng(seed)
    low, high = env.action_space.low, env.action_space.high
    obs, _ = env.reset(seed=seed)
    keys = ("observations", "actions", "next_observations", "rewards", "dones", "timeouts")
    out = {key: [] for key in keys}
    for _ in range(n_steps):
        action = rng.uniform(low, high).astype(np.float32)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        for key, value in zip(keys, (obs, action, next_obs, reward, terminated or truncated, truncated)):
            out[key].append(value)
        obs = env.reset()[0] if (terminated or truncated) else next_obs
    env.close()
    arrays = {key: np.asarray(value) for key, value in out.items()}
    for key in ("observations", "actions", "next_observations", "rewards"):
        arrays[key] = arrays[key].astype(np.float32)
    arrays["dones"], arrays["timeouts"] = arrays["dones"].astype(bool), arrays["timeouts"].astype(bool)
    return arrays


def tiled(arrays, keys, n: int, rng):
    """The rollout repeated to n samples; copies after the first get Gaussian jitter on ``keys``."""
    import numpy as np

    m = len(arrays["observations"])
    index = np.arange(n) % m
    out = {key: value[index].copy() for key, value in arrays.items()}
    if n > m:
        for key in keys:
            scale = JITTER * arrays[key].std(axis=0, keepdims=True)
            noise = rng.standard_normal((n - m, arrays[key].shape[1]), dtype=np.float32)
            out[key][m:] += noise * scale
    return out


def make_problem(case: str, n: int):
    """(FlatLoss, description) for a case with n samples; deterministic given (case, n)."""
    import numpy as np
    import torch as th

    from pgsubspaces.agents import new_agent
    from pgsubspaces.envs import make_vec_env
    from pgsubspaces.losses import make_loss

    rng = np.random.default_rng(12345)
    data = rollout(ROLLOUT_STEPS)
    if case == "ppo-actor":
        agent = new_agent(
            "ppo",
            make_vec_env("Walker2d-v5"),
            {},
            {"net_arch": {"pi": [64, 64], "vf": [64, 64]}, "activation_fn": "tanh"},
            seed=0,
            device="cpu",
        )
        policy = agent.policy
        data = tiled(data, ("observations",), n, rng)
        obs = th.as_tensor(data["observations"])
        with th.no_grad():  # actions sampled from the policy, log-probs of those actions under it
            distribution = policy.get_distribution(obs)
            mean = distribution.distribution.mean
            std = distribution.distribution.stddev
            noise = th.as_tensor(rng.standard_normal(mean.shape, dtype=np.float32))
            actions = mean + std * noise
            old_log_prob = distribution.log_prob(actions)
        batch = {
            "observations": obs,
            "actions": actions,
            "old_log_prob": old_log_prob,
            "advantages": th.as_tensor(rng.standard_normal(n, dtype=np.float32)),
            "returns": th.as_tensor(rng.standard_normal(n, dtype=np.float32)),
        }
        loss = make_loss("ppo", "actor", policy, batch, {"clip_range": 0.2, "ent_coef": 0.0, "vf_coef": 0.5}, "corrected")
    elif case == "sac-critic":
        agent = new_agent(
            "sac", make_vec_env("Walker2d-v5"), {"buffer_size": 1000}, {"net_arch": [256, 256]}, seed=0, device="cpu"
        )
        data = tiled(data, ("observations", "next_observations", "actions"), n, rng)
        data["actions"] = np.clip(data["actions"], -1.0, 1.0)
        act_dim = data["actions"].shape[1]
        batch = {key: th.as_tensor(value) for key, value in data.items()}
        batch["actor_noise"] = th.as_tensor(rng.standard_normal((n, act_dim), dtype=np.float32))
        batch["target_noise"] = th.as_tensor(rng.standard_normal((n, act_dim), dtype=np.float32))
        loss = make_loss("sac", "critic", agent.policy, batch, {"gamma": 0.99, "ent_coef_value": 0.2}, "corrected")
    else:
        raise ValueError(f"unknown case {case!r}; expected one of {CASES}")
    del agent, data
    gc.collect()
    return loss


class CurvlinopsModel:
    """Builders for curvlinops' (model_func, loss_func, params, data) view of a FlatLoss.

    model_func(X) returns the per-sample losses of the batch dict X with the flat parameter vector ``theta``
    (an nn.Parameter of the wrapper) substituted for the network's parameters; loss_func averages them
    (reduction 'mean', so curvlinops weights batch b by |b| / N). The total is exactly FlatLoss.loss.
    """

    @staticmethod
    def build(loss, theta, batch_size: int = CHUNK):
        import torch as th
        from torch import nn

        layout = loss.layout

        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                self.flat_loss = loss  # frozen network inside
                self.theta = nn.Parameter(theta.detach().clone())

            def forward(self, batch):
                offsets = layout.offsets
                bound = {
                    f"policy.{name}": self.theta[a:b].view(shape)
                    for name, a, b, shape in zip(layout.names, offsets, offsets[1:], layout.shapes)
                }
                return th.func.functional_call(self.flat_loss, bound, (dict(batch),))

        class MeanLoss(nn.Module):
            reduction = "mean"

            def forward(self, per_sample, _unused_target):
                return per_sample.mean()

        model = Model()
        n = loss.n_samples
        data = []
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            chunk = {key: value[start:stop] for key, value in loss.batch.items()}
            data.append((chunk, th.zeros(stop - start)))
        return model, MeanLoss(), [model.theta], data


def _timed_scipy_operator(n, matvec, dtype, clock):
    """A scipy LinearOperator whose matvec time and count are accumulated in ``clock``."""
    import numpy as np
    import scipy.sparse.linalg as sla

    def apply(x):
        started = time.perf_counter()
        y = matvec(x)
        clock["seconds"] += time.perf_counter() - started
        clock["count"] += 1
        return y

    return sla.LinearOperator((n, n), matvec=apply, dtype=np.dtype(dtype))


def _eigsh(operator, n, k, tol):
    """scipy eigsh 'LA' with one BLAS thread, a seeded start vector; partial results if not converged."""
    import numpy as np
    import scipy.sparse.linalg as sla
    from threadpoolctl import threadpool_limits

    v0 = np.random.default_rng(0).standard_normal(n).astype(operator.dtype)
    converged = True
    with threadpool_limits(limits=1, user_api="blas"):
        try:
            values, vectors = sla.eigsh(operator, k=k, which="LA", tol=tol, v0=v0)
        except sla.ArpackNoConvergence as error:
            values, vectors, converged = error.eigenvalues, error.eigenvectors, False
    order = np.argsort(values)[::-1]
    return values[order].astype(np.float64), np.ascontiguousarray(vectors[:, order]), converged


def _naive_operator(loss, theta):
    """The original's approach: one gradient graph over all data, then autograd.grad(g, theta, v) per matvec."""
    import numpy as np
    import torch as th

    leaf = theta.detach().clone().requires_grad_(True)
    gradient = th.autograd.grad(loss.loss(leaf), leaf, create_graph=True)[0]

    def matvec(x):
        v = th.from_numpy(np.ascontiguousarray(x, dtype=np.float32).reshape(-1))
        return th.autograd.grad(gradient, leaf, v, retain_graph=True)[0].numpy()

    return matvec, (leaf, gradient)


def _curvlinops_operator(loss, theta):
    from curvlinops import HessianLinearOperator

    model, mean_loss, params, data = CurvlinopsModel.build(loss, theta)
    hessian = HessianLinearOperator(
        model,
        mean_loss,
        params,
        data,
        num_data=loss.n_samples,
        check_deterministic=False,
        batch_size_fn=lambda batch: len(next(iter(batch.values()))),
    )
    return hessian, hessian.to_scipy()


def run_one(method: str, case: str, n: int, mode: str) -> dict:
    import numpy as np
    import torch as th

    th.set_num_threads(THREADS)
    base_mb = rss_mb()
    out = {"method": method, "case": case, "N": n, "mode": mode, "threads": th.get_num_threads(), "base_MB": base_mb}
    started = time.perf_counter()
    loss = make_problem(case, n)
    theta = loss.theta0()
    out.update(data_s=time.perf_counter() - started, n_params=int(theta.numel()), data_MB=rss_mb() - base_mb)
    n_params = theta.numel()

    if mode == "verify":
        return {**out, **verify(case, loss, theta)}

    from pgsubspaces.eigensolvers import EigenConvergenceError, arpack, lanczos, residuals
    from pgsubspaces.hessian import HessianOperator

    # ---- setup (timed)
    started = time.perf_counter()
    keep = None
    if method in ("ours", "ours-arpack"):
        operator = HessianOperator(loss, theta, chunk_size=CHUNK, memory_budget=BUDGET)
        out.update(cached_chunks=operator.cached_chunks, n_chunks=len(operator.chunks), cached_MB=operator.cached_bytes / 2**20)
    elif method == "naive":
        naive_matvec, keep = _naive_operator(loss, theta)
        clock = {"seconds": 0.0, "count": 0}
        scipy_op = _timed_scipy_operator(n_params, naive_matvec, np.float32, clock)
    elif method == "curvlinops":
        keep, inner = _curvlinops_operator(loss, theta)
        clock = {"seconds": 0.0, "count": 0}
        scipy_op = _timed_scipy_operator(n_params, inner.matvec, inner.dtype, clock)
        out["scipy_dtype"] = str(inner.dtype)
    else:
        raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
    out["setup_s"] = time.perf_counter() - started
    out["setup_peak_MB"] = peak_mb()

    if mode == "matvecs":
        generator = th.Generator().manual_seed(1)
        vectors = [th.randn(n_params, generator=generator) for _ in range(N_TIMED_MATVECS)]
        started = time.perf_counter()
        for v in vectors:
            if method.startswith("ours"):
                operator.matvec(v)
            else:
                scipy_op.matvec(v.numpy())
        seconds = time.perf_counter() - started
        out.update(matvecs=N_TIMED_MATVECS, matvec_s=seconds, s_per_matvec=seconds / N_TIMED_MATVECS)
        out["peak_MB"] = peak_mb()
        return out

    # ---- solve (timed)
    out["converged"] = True
    started = time.perf_counter()
    if method in ("ours", "ours-arpack"):
        solver = lanczos if method == "ours" else arpack
        try:
            result = solver(operator.matvec, operator.n, K, TOL, operator.dtype, operator.device)
        except EigenConvergenceError as error:
            if error.result is None:
                raise
            result, out["converged"] = error.result, False
        out["solve_s"] = time.perf_counter() - started
        out["peak_MB"] = peak_mb()
        values, res = result.eigenvalues, result.residuals
        out.update(matvecs=result.n_matvecs, hvp_s=operator.seconds, residual_matvecs_in_timing=len(res))
    else:
        values, vectors, out["converged"] = _eigsh(scipy_op, n_params, K, TOL)
        out["solve_s"] = time.perf_counter() - started
        out["peak_MB"] = peak_mb()
        out.update(matvecs=clock["count"], hvp_s=clock["seconds"], residual_matvecs_in_timing=0)
        # ---- residuals with the project's operator, outside the timed region and after the peak was read
        del scipy_op, keep
        gc.collect()
        yardstick = HessianOperator(loss, theta, chunk_size=CHUNK, memory_budget=BUDGET)
        res = residuals(yardstick.matvec, values, th.as_tensor(vectors, dtype=th.float32))
    out["s_per_matvec"] = out["hvp_s"] / max(out["matvecs"], 1)
    scale = max(float(np.max(np.abs(values))), 1e-300) if len(values) else 1.0
    out["max_rel_residual"] = float(np.max(res) / scale) if len(res) else float("nan")
    out["n_eigenpairs"] = len(values)
    out["eigenvalues"] = [float(x) for x in values]
    return out


def verify(case: str, loss, theta) -> dict:
    """Hv of the three operators on the same random vectors: relative differences to ours."""
    import numpy as np
    import torch as th

    from pgsubspaces.hessian import HessianOperator

    ours = HessianOperator(loss, theta, chunk_size=CHUNK, memory_budget=BUDGET)
    naive_matvec, _keep = _naive_operator(loss, theta)
    _, curv = _curvlinops_operator(loss, theta)
    generator = th.Generator().manual_seed(2)
    diffs = {"naive": [], "curvlinops": []}
    for _ in range(3):
        v = th.randn(theta.numel(), generator=generator)
        reference = ours.matvec(v).double().numpy()
        for name, hv in (("naive", naive_matvec(v.numpy())), ("curvlinops", curv.matvec(v.numpy()))):
            diffs[name].append(float(np.linalg.norm(hv - reference) / np.linalg.norm(reference)))
    # float64 ground truth for the first vector: the same problem rebuilt and cast to float64
    exact_loss = make_problem(case, loss.n_samples).double()
    exact_loss.batch = {k: (x.double() if x.is_floating_point() else x) for k, x in exact_loss.batch.items()}
    exact = HessianOperator(exact_loss, theta.double(), chunk_size=CHUNK, memory_budget=BUDGET)
    v = th.randn(theta.numel(), generator=th.Generator().manual_seed(2))
    truth = exact.matvec(v.double()).numpy()
    approx = {"ours": ours.matvec(v).double().numpy(), "naive": naive_matvec(v.numpy()), "curvlinops": curv.matvec(v.numpy())}
    return {
        "hv_rel_diff_vs_ours": {name: max(values) for name, values in diffs.items()},
        "hv_rel_err_vs_float64": {
            name: float(np.linalg.norm(hv - truth) / np.linalg.norm(truth)) for name, hv in approx.items()
        },
    }


# ---------------------------------------------------------------------------------------------- parent side


def plan(args) -> list[tuple[str, str, int, str]]:
    jobs = []
    methods = args.methods.split(",")
    cases = args.cases.split(",")
    if not args.no_verify:
        jobs += [("all", case, 10_000, "verify") for case in cases]
    sizes = {"ppo-actor": [10_000] if args.quick else [10_000, 100_000], "sac-critic": [10_000]}
    if args.sac_1e5 and not args.quick:
        sizes["sac-critic"].append(100_000)
    for case in cases:
        for n in sizes[case]:
            jobs += [(method, case, n, "solve") for method in methods]
    if not args.quick and "ppo-actor" in cases:
        jobs += [(m, "ppo-actor", 1_000_000, "matvecs") for m in ("ours", "naive", "curvlinops") if m in methods]
    return jobs


def run_child(job, timeout: float) -> dict:
    method, case, n, mode = job
    command = [sys.executable, str(Path(__file__).resolve()), "--one", method, case, str(n), "--mode", mode]
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": str(THREADS)}
    started = time.perf_counter()
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"method": method, "case": case, "N": n, "mode": mode, "status": f"timeout>{timeout:.0f}s"}
    wall = time.perf_counter() - started
    for line in proc.stdout.splitlines():
        if line.startswith(MARKER):
            return {**json.loads(line[len(MARKER) :]), "status": "ok", "child_wall_s": wall}
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
    return {"method": method, "case": case, "N": n, "mode": mode, "status": "failed", "error": tail, "child_wall_s": wall}


def environment() -> dict:
    import curvlinops
    import numpy
    import scipy
    import stable_baselines3
    import torch

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    sources = {}
    for name in ("hessian.py", "eigensolvers.py", "losses.py"):
        path = ROOT / "src" / "pgsubspaces" / name
        sources[name] = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = None
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "curvlinops": getattr(curvlinops, "__version__", None) or _dist_version("curvlinops-for-pytorch"),
        "stable_baselines3": stable_baselines3.__version__,
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "torch_threads": THREADS,
        "blas_threads_in_eigsh": 1,
        "git_commit": commit,
        "source_sha256_16": sources,
        "settings": {"k": K, "tol": TOL, "chunk_size": CHUNK, "memory_budget": BUDGET, "dtype": "float32",
                     "rollout_steps": ROLLOUT_STEPS, "jitter": JITTER, "timed_matvecs_at_1e6": N_TIMED_MATVECS},
    }


def _dist_version(name: str):
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def speedups(results: list[dict]) -> None:
    """Attach baseline_time / ours_time (solve: solve_s; matvecs: s_per_matvec) to the 'ours' rows."""
    ok = [r for r in results if r.get("status") == "ok" and r["mode"] in ("solve", "matvecs")]
    for row in ok:
        if row["method"] != "ours":
            continue
        key = "solve_s" if row["mode"] == "solve" else "s_per_matvec"
        for other in ok:
            if (other["case"], other["N"], other["mode"]) == (row["case"], row["N"], row["mode"]) and other["method"] in (
                "naive",
                "curvlinops",
            ):
                row[f"speedup_vs_{other['method']}"] = other[key] / row[key]
        # eigenvalue agreement with ours (solve only)
        if row["mode"] == "solve":
            for other in ok:
                same = (other["case"], other["N"], other["mode"]) == (row["case"], row["N"], "solve")
                if same and other["method"] != "ours" and other.get("eigenvalues") and row.get("eigenvalues"):
                    a, b = row["eigenvalues"], other["eigenvalues"]
                    m = min(len(a), len(b))
                    scale = max(abs(x) for x in a)
                    other["max_eig_diff_vs_ours_rel"] = max(abs(x - y) for x, y in zip(a[:m], b[:m])) / scale


def fmt(value, spec):
    return "-" if value is None else format(value, spec)


def table(results: list[dict]) -> str:
    header = (
        f"{'case':<11}{'N':>9} {'method':<12}{'setup s':>8}{'solve s':>9}{'matvecs':>8}{'s/mv':>8}"
        f"{'peak MB':>9}{'max rel res':>12}{'eig diff':>10}{'x naive':>8}{'x curvl':>8}  note"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        if r["mode"] == "verify":
            continue
        if r.get("status") != "ok":
            lines.append(f"{r['case']:<11}{r['N']:>9} {r['method']:<12}  {r.get('status')} {r.get('error', '')}")
            continue
        note = []
        if r["mode"] == "matvecs":
            note.append(f"{r['matvecs']} matvecs only: {r['matvec_s']:.1f} s")
        if r.get("converged") is False:
            note.append(f"NOT CONVERGED ({r.get('n_eigenpairs')} pairs)")
        if r.get("cached_chunks") is not None:
            note.append(f"cached {r['cached_chunks']}/{r['n_chunks']} chunks")
        if r.get("residual_matvecs_in_timing"):
            note.append(f"incl. {r['residual_matvecs_in_timing']} residual mv")
        lines.append(
            f"{r['case']:<11}{r['N']:>9} {r['method']:<12}{fmt(r.get('setup_s'), '8.2f')}"
            f"{fmt(r.get('solve_s'), '9.1f')}{r['matvecs']:>8}{fmt(r.get('s_per_matvec'), '8.4f')}"
            f"{fmt(r.get('peak_MB'), '9.0f')}{fmt(r.get('max_rel_residual'), '12.1e')}"
            f"{fmt(r.get('max_eig_diff_vs_ours_rel'), '10.1e')}"
            f"{fmt(r.get('speedup_vs_naive'), '8.2f')}{fmt(r.get('speedup_vs_curvlinops'), '8.2f')}  {'; '.join(note)}"
        )
    verifies = [r for r in results if r["mode"] == "verify"]
    for r in verifies:
        if r.get("status") == "ok":
            d = r["hv_rel_diff_vs_ours"]
            lines.append(
                f"Hv check {r['case']} N={r['N']}: |Hv - Hv_ours|/|Hv_ours| naive {d['naive']:.1e}, curvlinops "
                f"{d['curvlinops']:.1e}; vs float64 truth: "
                + ", ".join(f"{k} {x:.1e}" for k, x in r["hv_rel_err_vs_float64"].items())
            )
        else:
            lines.append(f"Hv check {r['case']}: {r.get('status')} {r.get('error', '')}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--one", nargs=3, metavar=("METHOD", "CASE", "N"), help="run one child and print a JSON line")
    parser.add_argument("--mode", choices=("solve", "matvecs", "verify"), default="solve")
    parser.add_argument("--quick", action="store_true", help="N = 1e4 only (no 1e5 solves, no 1e6 matvecs)")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--sac-1e5", action="store_true", help="also solve the SAC critic at N = 1e5 (slow)")
    parser.add_argument("--no-verify", action="store_true", help="skip the Hv cross-check")
    parser.add_argument("--timeout", type=float, default=240.0, help="seconds per child")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    if args.one:
        method, case, n = args.one
        result = run_one(method, case, int(float(n)), args.mode)
        result["ru_maxrss_MB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(MARKER + json.dumps(result), flush=True)
        return

    env = environment()
    env["loadavg_start"] = os.getloadavg()
    started = time.perf_counter()
    results = []
    for job in plan(args):
        result = run_child(job, args.timeout)
        results.append(result)
        brief = {k: result.get(k) for k in ("solve_s", "setup_s", "matvecs", "s_per_matvec", "peak_MB", "max_rel_residual")}
        print(f"[{time.perf_counter() - started:6.0f}s] {job}: {result.get('status')} {brief}", flush=True)
    env["loadavg_end"] = os.getloadavg()
    env["total_wall_s"] = time.perf_counter() - started
    speedups(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"environment": env, "results": results}, indent=1))
    print()
    print(table(results))
    print(f"\ntotal {env['total_wall_s']:.0f} s; raw results: {args.out}")


if __name__ == "__main__":
    main()
