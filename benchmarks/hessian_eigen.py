"""Benchmark: top-k Hessian eigenpairs of RL losses, three ways.

    python benchmarks/hessian_eigen.py               # full plan (< 15 min on 2 cores)
    python benchmarks/hessian_eigen.py --quick       # N = 1e4 only
    python benchmarks/hessian_eigen.py --one METHOD CASE N [--mode solve|matvecs|verify]   # one child, one JSON line

Methods
    ours          pgsubspaces.analysis.hessian.HessianOperator (cached per-chunk gradient graphs) + eigensolvers.lanczos
    ours-arpack   the same operator + eigensolvers.arpack (scipy eigsh, float32)
    curvlinops    curvlinops.HessianLinearOperator over 16384-sample batches, .to_scipy(), scipy eigsh
    naive         one gradient graph over the whole dataset, one double-backward per matvec, scipy eigsh (float32)

Cases
    ppo-actor     PPO actor, Walker2d-v5 sizes, [64, 64] tanh: 5,708 parameters
    sac-critic    SAC critic (two Q-networks), Walker2d-v5 sizes, [256, 256] relu: 144,386 parameters

Every (method, case, N) runs in a fresh subprocess so that its peak RSS (VmHWM) is its own, data included.
Eigsh-based solves are timed without residuals (``arpack`` computes its own inside, ``lanczos`` takes them
from its coefficients); the reported residuals ||Hv - lambda v|| of every method are computed afterwards
with fresh products of the project's HessianOperator, outside the timed region.
Results: benchmarks/results/hessian_eigen.json.
"""

from __future__ import annotations

import argparse
import contextlib
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
ACCURACY = {"subspace_tol": 0.1, "guard": 5}  # the schema's analysis.subspace_tol, guard_eigenpairs
CHUNK = 16384
BUDGET = 0.3e9
THREADS = 2
ROLLOUT_STEPS = 4096  # real Walker2d-v5 transitions; larger N tiles them with jitter
JITTER = 0.01  # jitter std, as a fraction of each feature's std over the rollout
N_TIMED_MATVECS = 20
METHODS = ("ours", "ours-arpack", "curvlinops", "naive")
# diagnostic only (--investigate): ours with the lanczos call under threadpool_limits(1, "blas")
DIAGNOSTIC_METHODS = ("ours-blas1",)
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

    from pgsubspaces.train.envs import make_env

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
    out = {}
    for key, value in arrays.items():
        out[key] = value[index]
        if key in keys and n > m:
            scale = (JITTER * value.std(axis=0, keepdims=True)).astype(np.float32)
            for start in range(m, n, 65536):  # in blocks, so that generating data does not set the memory peak
                stop = min(start + 65536, n)
                out[key][start:stop] += rng.standard_normal((stop - start, value.shape[1]), dtype=np.float32) * scale
    return out


def make_problem(case: str, n: int):
    """(FlatLoss, description) for a case with n samples; deterministic given (case, n)."""
    import numpy as np
    import torch as th

    from pgsubspaces.analysis.losses import make_loss
    from pgsubspaces.train.agents import new_agent
    from pgsubspaces.train.envs import make_vec_env

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
        data = tiled({"observations": data["observations"]}, ("observations",), n, rng)
        obs = th.as_tensor(data["observations"])
        actions, old_log_prob = th.empty((n, policy.action_space.shape[0])), th.empty(n)
        with th.no_grad():  # actions sampled from the policy, log-probs of those actions under it (in blocks)
            for start in range(0, n, 65536):
                distribution = policy.get_distribution(obs[start : start + 65536])
                mean, std = distribution.distribution.mean, distribution.distribution.stddev
                noise = th.as_tensor(rng.standard_normal(tuple(mean.shape), dtype=np.float32))
                actions[start : start + 65536] = mean + std * noise
                old_log_prob[start : start + 65536] = distribution.log_prob(actions[start : start + 65536])
        batch = {
            "observations": obs,
            "actions": actions,
            "old_log_prob": old_log_prob,
            "advantages": th.as_tensor(rng.standard_normal(n, dtype=np.float32)),
            "returns": th.as_tensor(rng.standard_normal(n, dtype=np.float32)),
        }
        loss = make_loss(
            "ppo", "actor", policy, batch, {"clip_range": 0.2, "ent_coef": 0.0, "vf_coef": 0.5}, "corrected"
        )
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


def curvlinops_view(loss, theta, batch_size: int = CHUNK):
    """(model_func, loss_func, params, data) as curvlinops 3.0.1 wants them, for a FlatLoss.

    model_func(X) returns the per-sample losses of the batch dict X, with the flat vector ``theta`` (an
    nn.Parameter of the wrapper) substituted for the network's parameters; loss_func averages them
    (reduction 'mean', so curvlinops weights batch b by |b| / N). The sum over batches is FlatLoss.loss.
    """
    import torch as th
    from torch import nn

    layout = loss.layout

    class FlatModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.flat_loss = loss  # the frozen network and its data
            self.theta = nn.Parameter(theta.detach().clone())

        def forward(self, batch):
            offsets = layout.offsets
            bound = {
                f"policy.{name}": self.theta[a:b].view(shape)
                for name, a, b, shape in zip(layout.names, offsets, offsets[1:], layout.shapes)
            }
            return th.func.functional_call(self.flat_loss, bound, (dict(batch),))

    class MeanOfSamples(nn.Module):
        reduction = "mean"

        def forward(self, per_sample, _unused_target):
            return per_sample.mean()

    model, n = FlatModel(), loss.n_samples
    data = []
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        data.append(({key: value[start:stop] for key, value in loss.batch.items()}, th.zeros(stop - start)))
    return model, MeanOfSamples(), [model.theta], data


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

    model, mean_loss, params, data = curvlinops_view(loss, theta)
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


def run_one(method: str, case: str, n: int, mode: str, chunk=CHUNK, budget=BUDGET, threads=THREADS) -> dict:
    import numpy as np
    import torch as th

    th.set_num_threads(threads)
    base_mb = rss_mb()
    out = {"method": method, "case": case, "N": n, "mode": mode, "threads": th.get_num_threads(), "base_MB": base_mb}
    if method.startswith("ours"):
        out.update(chunk_size=chunk, memory_budget=budget)
    started = time.perf_counter()
    loss = make_problem(case, n)
    theta = loss.theta0()
    out.update(data_s=time.perf_counter() - started, n_params=int(theta.numel()), data_MB=rss_mb() - base_mb)
    n_params = theta.numel()

    if mode == "verify":
        return {**out, **verify(case, loss, theta)}

    from threadpoolctl import threadpool_limits

    from pgsubspaces.analysis.eigensolvers import EigenConvergenceError, arpack, lanczos, residuals
    from pgsubspaces.analysis.hessian import HessianOperator

    # ---- setup (timed)
    started = time.perf_counter()
    keep = None
    if method.startswith("ours"):
        operator = HessianOperator(loss, theta, chunk_size=chunk, memory_budget=budget, workers=threads)
        out.update(
            cached_chunks=operator.cached_chunks, n_chunks=len(operator.chunks), cached_MB=operator.cached_bytes / 2**20
        )
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
    if method.startswith("ours"):
        solver = arpack if method == "ours-arpack" else lanczos
        blas = threadpool_limits(limits=1, user_api="blas") if method == "ours-blas1" else contextlib.nullcontext()
        try:
            with blas:
                result = solver(operator.matvec, operator.n, K, TOL, operator.dtype, operator.device, **ACCURACY)
        except EigenConvergenceError as error:
            if error.result is None:
                raise
            result, out["converged"] = error.result, False
        out["solve_s"] = time.perf_counter() - started
        out["peak_MB"] = peak_mb()
        values = result.eigenvalues
        in_timing = len(values) if solver is arpack else 0  # lanczos's residuals come from its coefficients
        out.update(matvecs=result.n_matvecs, hvp_s=operator.seconds, residual_matvecs_in_timing=in_timing)
        scale = max(float(np.max(np.abs(values))), 1e-300)
        out["reported_max_rel_residual"] = float(np.max(result.residuals) / scale)
        # ---- true residuals, as for the baselines: outside the timed region
        res = residuals(operator.matvec, values, result.eigenvectors)
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

    from pgsubspaces.analysis.hessian import HessianOperator

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
    approx = {
        "ours": ours.matvec(v).double().numpy(),
        "naive": naive_matvec(v.numpy()),
        "curvlinops": curv.matvec(v.numpy()),
    }
    return {
        "hv_rel_diff_vs_ours": {name: max(values) for name, values in diffs.items()},
        "hv_rel_err_vs_float64": {
            name: float(np.linalg.norm(hv - truth) / np.linalg.norm(truth)) for name, hv in approx.items()
        },
    }


# ---------------------------------------------------------------------------------------------- parent side

# Rough wall seconds of each child on a quiet machine (imports, data, setup, solve, residuals), used only to
# skip jobs that cannot finish before the deadline.
ESTIMATE = {
    ("verify", "ppo-actor"): 8,
    ("verify", "sac-critic"): 15,
    ("solve", "ppo-actor", 10_000): {"ours": 12, "ours-arpack": 12, "naive": 12, "curvlinops": 35},
    ("solve", "ppo-actor", 100_000): {"ours": 60, "ours-arpack": 75, "naive": 90, "curvlinops": 180},
    ("solve", "sac-critic", 10_000): {"ours": 100, "ours-arpack": 110, "naive": 105, "curvlinops": 140},
    ("solve", "sac-critic", 100_000): {"ours": 1000, "ours-arpack": 1100, "naive": 1100, "curvlinops": 1500},
    ("matvecs", "ppo-actor", 100_000): {"ours": 15, "naive": 15},
    ("matvecs", "ppo-actor", 1_000_000): {"ours": 45, "naive": 85, "curvlinops": 100},
}


def estimate(job) -> float:
    method, case, n, mode, *_ = job
    if mode == "verify":
        return ESTIMATE[("verify", case)]
    method = "ours" if method == "ours-blas1" else method
    return ESTIMATE.get((mode, case, n), {}).get(method, 60)


def plan(args) -> list[tuple]:
    """Jobs (method, case, N, mode, chunk, budget) in priority order: what matters most for the claims first."""
    methods, cases = args.methods.split(","), args.cases.split(",")
    jobs = []

    sizes = {int(float(x)) for x in args.sizes.split(",")} if args.sizes else None

    def add(method, case, n, mode="solve", chunk=CHUNK, budget=BUDGET):
        if sizes is not None and n not in sizes:
            return
        if case in cases and (method in methods or mode == "verify"):
            jobs.append((method, case, n, mode, chunk, budget))

    if args.investigate:  # lanczos' BLAS threads; chunk sizes and memory budgets of our operator (20 matvecs)
        methods.append("ours-blas1")
        for n in (10_000, 100_000):
            add("ours-blas1", "ppo-actor", n)
        add("naive", "ppo-actor", 100_000, "matvecs")
        for n in (100_000, 1_000_000):
            for chunk in (2048, 4096, 8192, 16384, 32768):
                add("ours", "ppo-actor", n, "matvecs", chunk)
        for budget in (0.6e9, 0.9e9, 3e9):
            add("ours", "ppo-actor", 1_000_000, "matvecs", CHUNK, budget)
        return jobs
    part1, part2 = args.part in ("1", "all"), args.part in ("2", "all")
    if part1:  # the PPO actor: everything the performance claims are about (~12 min)
        if not args.no_verify:
            add("all", "ppo-actor", 10_000, "verify")
        for method in ("ours", "naive", "curvlinops", "ours-arpack"):
            add(method, "ppo-actor", 10_000)
        if not args.quick:
            for method in ("ours", "naive", "curvlinops"):
                add(method, "ppo-actor", 100_000)
            for method in ("ours", "naive", "curvlinops"):
                add(method, "ppo-actor", 1_000_000, "matvecs")
    if part2:  # the SAC critic, and ours-arpack at N = 1e5 (~10 min)
        if not args.no_verify:
            add("all", "sac-critic", 10_000, "verify")
        for method in ("ours", "naive", "curvlinops", "ours-arpack"):
            add(method, "sac-critic", 10_000)
        if not args.quick:
            add("ours-arpack", "ppo-actor", 100_000)
            if args.sac_1e5:
                for method in ("ours", "naive", "curvlinops", "ours-arpack"):
                    add(method, "sac-critic", 100_000)
    return jobs


def _busy_seconds() -> float:
    """CPU-seconds all processes have spent busy since boot (from /proc/stat)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, idle, iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def others_cpus_now(seconds: float = 2.0) -> float:
    """CPUs used by other processes over the next ``seconds`` (this parent idles meanwhile)."""
    busy = _busy_seconds()
    time.sleep(seconds)
    return (_busy_seconds() - busy) / seconds


def wait_quiet(limit: float) -> float:
    """Wait up to ``limit`` seconds for the machine to be quiet; returns the seconds waited."""
    started = time.perf_counter()
    while time.perf_counter() - started < limit and others_cpus_now() > 0.25:
        time.sleep(3.0)
    return time.perf_counter() - started


def run_child(job, timeout: float, passive: bool, threads: int) -> dict:
    method, case, n, mode, chunk, budget = job
    command = [sys.executable, str(Path(__file__).resolve()), "--one", method, case, str(n), "--mode", mode]
    command += ["--chunk-size", str(chunk), "--memory-budget", str(budget), "--threads", str(threads)]
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": str(threads)}
    if passive:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    row = {"method": method, "case": case, "N": n, "mode": mode}
    if method.startswith("ours"):
        row.update(chunk_size=chunk, memory_budget=budget)
    busy, children = _busy_seconds(), resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {**row, "status": f"timeout>{timeout:.0f}s", "child_wall_s": time.perf_counter() - started}
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = (after.ru_utime - children.ru_utime) + (after.ru_stime - children.ru_stime)
    # CPUs used on average by other processes while the child ran (0 = quiet machine, 2 = both cores taken)
    row.update(child_wall_s=wall, child_cpu_s=own, others_cpus=max(0.0, (_busy_seconds() - busy - own) / wall))
    for line in proc.stdout.splitlines():
        if line.startswith(MARKER):
            return {**json.loads(line[len(MARKER) :]), **row, "status": "ok"}
    return {**row, "status": "failed", "error": (proc.stderr or proc.stdout).strip().splitlines()[-5:]}


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
        "blas_threads_in_eigsh": 1,
        "git_commit": commit,
        "source_sha256_16": sources,
        "settings": {
            "k": K,
            "tol": TOL,
            "chunk_size": CHUNK,
            "memory_budget": BUDGET,
            "dtype": "float32",
            "rollout_steps": ROLLOUT_STEPS,
            "jitter": JITTER,
            "timed_matvecs_at_1e6": N_TIMED_MATVECS,
        },
    }


def _dist_version(name: str):
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _key(row) -> tuple:
    return row["method"], row["case"], row["N"], row["mode"], row.get("chunk_size"), row.get("memory_budget")


def merged(path: Path, env: dict, results: list[dict], fresh: bool) -> tuple[list[dict], list[dict]]:
    """This run's rows plus the earlier runs' rows in ``path`` that this run did not redo (skipped rows never win)."""
    runs, rows = [env], list(results)
    if path.exists() and not fresh:
        try:
            earlier = json.loads(path.read_text())
        except (OSError, ValueError):
            earlier = {}
        done = {_key(r) for r in results if r.get("status") == "ok"}
        kept = [r for r in earlier.get("results", []) if _key(r) not in done and r.get("status") == "ok"]
        earlier_keys = {_key(r) for r in kept}
        rows = [r for r in rows if r.get("status") == "ok" or _key(r) not in earlier_keys] + kept
        used = {r.get("run") for r in kept}
        runs += [e for e in earlier.get("runs", []) if e.get("date") in used]
    return runs, rows


def speedups(results: list[dict]) -> None:
    """Attach to ours' rows baseline / ours (solve_s, or s_per_matvec for matvecs rows) from the same run, and
    to the other rows the largest eigenvalue difference to ours (relative to max |lambda|)."""
    ok = [r for r in results if r.get("status") == "ok" and r["mode"] in ("solve", "matvecs")]
    for row in ok:
        for key in ("speedup_vs_naive", "speedup_vs_curvlinops", "max_eig_diff_vs_ours_rel"):
            row.pop(key, None)

    def reference(row) -> bool:
        return row["method"] == "ours" and (row.get("chunk_size"), row.get("memory_budget")) == (CHUNK, BUDGET)

    for ours in filter(reference, ok):
        key = "solve_s" if ours["mode"] == "solve" else "s_per_matvec"
        for other in ok:
            if (other["case"], other["N"], other["mode"]) != (ours["case"], ours["N"], ours["mode"]) or other is ours:
                continue
            if other["method"] in ("naive", "curvlinops") and other.get("run") == ours.get("run"):
                ours[f"speedup_vs_{other['method']}"] = other[key] / ours[key]
            if other.get("eigenvalues") and ours.get("eigenvalues"):
                a, b = ours["eigenvalues"], other["eigenvalues"]
                other["max_eig_diff_vs_ours_rel"] = max(abs(x - y) for x, y in zip(a, b)) / max(abs(x) for x in a)


ORDER = {method: i for i, method in enumerate(("ours", "ours-blas1", "ours-arpack", "naive", "curvlinops", "all"))}


def fmt(value, spec: str) -> str:
    width = int("".join(c for c in spec.split(".")[0] if c.isdigit()) or 0)
    return "-".rjust(width) if value is None else format(value, spec)


def table(results: list[dict]) -> str:
    header = (
        f"{'case':<11}{'N':>8} {'method':<12}{'setup s':>8}{'solve s':>9}{'matvecs':>8}{'s/mv':>8}{'peak MB':>8}"
        f"{'max rel res':>12}{'eig diff':>9}{'x naive':>8}{'x curvl':>8}{'others':>7}  note"
    )
    lines = [header, "-" * len(header)]
    rows = sorted(
        (r for r in results if r["mode"] != "verify"),
        key=lambda r: (
            r["case"],
            r["N"],
            r["mode"],
            ORDER.get(r["method"], 9),
            r.get("chunk_size", 0),
            r.get("memory_budget", 0),
        ),
    )
    for r in rows:
        if r.get("status") != "ok":
            lines.append(f"{r['case']:<11}{r['N']:>8} {r['method']:<12}  {r.get('status')} {r.get('error', '')}")
            continue
        note = []
        if r["mode"] == "matvecs":
            note.append(f"{r['matvecs']} timed matvecs only ({r['matvec_s']:.1f} s)")
        if r.get("converged") is False:
            note.append(f"NOT CONVERGED ({r.get('n_eigenpairs')} pairs)")
        if r.get("cached_chunks") is not None:
            note.append(f"cached {r['cached_chunks']}/{r['n_chunks']} chunks")
        if r.get("chunk_size", CHUNK) != CHUNK or r.get("memory_budget", BUDGET) != BUDGET:
            note.append(f"chunk {r['chunk_size']}, budget {r['memory_budget'] / 1e9:g} GB")
        if (r.get("others_cpus") or 0) > 0.25:
            note.append("CONTENDED")
        if len({row.get("run") for row in rows}) > 1:
            note.append(f"run {str(r.get('run'))[11:16]}")
        if r.get("residual_matvecs_in_timing"):
            note.append(f"incl. {r['residual_matvecs_in_timing']} residual matvecs")
        lines.append(
            f"{r['case']:<11}{r['N']:>8} {r['method']:<12}{fmt(r.get('setup_s'), '8.2f')}"
            f"{fmt(r.get('solve_s'), '9.1f')}{r['matvecs']:>8}{fmt(r.get('s_per_matvec'), '8.3f')}"
            f"{fmt(r.get('peak_MB'), '8.0f')}{fmt(r.get('max_rel_residual'), '12.1e')}"
            f"{fmt(r.get('max_eig_diff_vs_ours_rel'), '9.1e')}"
            f"{fmt(r.get('speedup_vs_naive'), '8.2f')}{fmt(r.get('speedup_vs_curvlinops'), '8.2f')}"
            f"{fmt(r.get('others_cpus'), '7.2f')}  {'; '.join(note)}"
        )
    for r in results:
        if r["mode"] != "verify":
            continue
        if r.get("status") == "ok":
            d, e = r["hv_rel_diff_vs_ours"], r["hv_rel_err_vs_float64"]
            lines.append(
                f"Hv check {r['case']} N={r['N']}: |Hv - Hv_ours| / |Hv_ours| naive {d['naive']:.1e}, curvlinops "
                f"{d['curvlinops']:.1e}; error vs float64: " + ", ".join(f"{k} {x:.1e}" for k, x in e.items())
            )
        else:
            lines.append(f"Hv check {r['case']}: {r.get('status')} {r.get('error', '')}")
    lines.append(
        "solve s: wall time of the eigensolver call; s/mv: time inside the Hessian-vector products / matvecs; "
        "x naive, x curvl: baseline time / ours time (solve s, or s/mv for the 1e6 rows); others: CPUs used "
        "by other processes during the run (of 2)."
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--one", nargs=3, metavar=("METHOD", "CASE", "N"), help="run one child and print a JSON line")
    parser.add_argument("--mode", choices=("solve", "matvecs", "verify"), default="solve")
    parser.add_argument("--chunk-size", type=int, default=CHUNK, help="ours: samples per chunk")
    parser.add_argument("--memory-budget", type=float, default=BUDGET, help="ours: bytes of cached graphs")
    parser.add_argument(
        "--part",
        choices=("1", "2", "all"),
        default="1",
        help="1: the PPO actor (N = 1e4, 1e5 solves, 1e6 matvecs); 2: the SAC critic and ours-arpack at N = 1e5; "
        "all: both (~25 min, give --deadline 1800). Each part fits in 15 min on a quiet 2-core machine; "
        "rows are merged into the results file",
    )
    parser.add_argument("--quick", action="store_true", help="N = 1e4 only (no 1e5 solves, no 1e6 matvecs)")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--sizes", help="only these N, e.g. 1e6 or 1e4,1e5 (verify rows count as 1e4)")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before each child, wait up to this long for other processes to use < 0.25 CPU (counts against "
        "--deadline)",
    )
    parser.add_argument("--sac-1e5", action="store_true", help="also solve the SAC critic at N = 1e5 (~1 h)")
    parser.add_argument("--no-verify", action="store_true", help="skip the Hv cross-checks")
    parser.add_argument("--investigate", action="store_true", help="only: chunk-size / budget sweep of ours")
    parser.add_argument(
        "--deadline", type=float, default=870.0, help="seconds for the whole run; jobs that would not fit are skipped"
    )
    parser.add_argument("--timeout", type=float, default=420.0, help="seconds per child at most")
    parser.add_argument(
        "--omp-passive",
        action="store_true",
        help="OMP_WAIT_POLICY=PASSIVE in the children: far more robust when another process is busy (libgomp's "
        "spin-waiting then slows 2-thread torch 10-50x), but ~1.5x slower for ours on a quiet machine",
    )
    parser.add_argument("--threads", type=int, default=THREADS, help="torch threads per child")
    parser.add_argument("--fresh", action="store_true", help="overwrite the results file instead of merging")
    parser.add_argument("--out", type=Path, default=None, help=f"default {RESULTS.relative_to(ROOT)}")
    args = parser.parse_args()
    if args.out is None:
        args.out = RESULTS.with_name(RESULTS.stem + "_investigate.json") if args.investigate else RESULTS

    if args.one:
        method, case, n = args.one
        result = run_one(method, case, int(float(n)), args.mode, args.chunk_size, args.memory_budget, args.threads)
        result["omp_wait_policy"] = os.environ.get("OMP_WAIT_POLICY")
        result["ru_maxrss_MB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(MARKER + json.dumps(result), flush=True)
        return

    env = environment()
    env.update(
        loadavg_start=os.getloadavg(),
        argv=sys.argv[1:],
        omp_wait_policy="PASSIVE" if args.omp_passive else None,
        torch_threads=args.threads,
    )
    started = time.perf_counter()
    results, slowdowns = [], []  # slowdown: child wall / quiet-machine estimate, to predict what still fits
    for job in plan(args):
        remaining = args.deadline - (time.perf_counter() - started)
        method, case, n, mode, chunk, budget = job
        slowdown = sorted(slowdowns)[len(slowdowns) // 2] if slowdowns else 1.0
        if estimate(job) * max(slowdown, 0.5) > remaining:
            results.append({"method": method, "case": case, "N": n, "mode": mode, "status": "skipped (time budget)"})
            print(f"[{time.perf_counter() - started:5.0f}s] {job[:4]}: skipped, {remaining:.0f} s left", flush=True)
            continue
        waited = (
            wait_quiet(min(args.wait_quiet, remaining - estimate(job) * max(slowdown, 0.5))) if args.wait_quiet else 0
        )
        remaining = args.deadline - (time.perf_counter() - started)
        result = run_child(job, min(args.timeout, remaining), args.omp_passive, args.threads)
        result["waited_for_quiet_s"] = waited
        results.append(result)
        if result.get("status") == "ok":
            slowdowns.append(result["child_wall_s"] / estimate(job))
        brief = {
            k: result.get(k)
            for k in ("setup_s", "solve_s", "matvecs", "s_per_matvec", "peak_MB", "max_rel_residual", "others_cpus")
        }
        brief = {k: float(f"{v:.3g}") if isinstance(v, float) else v for k, v in brief.items() if v is not None}
        print(f"[{time.perf_counter() - started:5.0f}s] {job[:4]}: {result.get('status')} {brief}", flush=True)
    env.update(loadavg_end=os.getloadavg(), total_wall_s=time.perf_counter() - started)
    for row in results:
        row["run"] = env["date"]
    runs, results = merged(args.out, env, results, fresh=args.fresh)
    speedups(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"runs": runs, "results": results}, indent=1))
    print()
    print(table(results))
    print(f"\ntotal {env['total_wall_s']:.0f} s; raw results: {args.out}")


if __name__ == "__main__":
    main()
