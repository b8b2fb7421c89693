"""stable-baselines3 files read as data: model zips, VecNormalize and replay-buffer pickles.

SB3's own loader unpickles (cloudpickle) the ``:serialized:`` entries of a zip's ``data`` JSON, and its
VecNormalize and replay-buffer files are plain pickles, so loading a file from elsewhere runs whatever code
it carries. This module never does that:

- a zip's ``data`` member is parsed as JSON; of a ``:serialized:`` entry only the readable fields SB3
  writes beside it (``data_to_json``: the object's ``__dict__`` items, non-JSON ones as ``str()``) are
  used, the pickle itself is never decoded;
- ``policy.pth`` and ``pytorch_variables.pth`` are read with ``torch.load(weights_only=True)``;
- pickles go through ``SafeUnpickler``, which admits numpy's array, dtype and scalar reconstruction and
  maps the SB3, gymnasium, torch and numpy-random classes they name to inert ``StandIn`` objects that only
  hold their state; any other callable is refused with its ``module.name``.
"""

from __future__ import annotations

import io
import json
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th

SERIALIZED = ":serialized:"
BOX_TYPES = ("<class 'gymnasium.spaces.box.Box'>", "<class 'gym.spaces.box.Box'>")
# numpy prints at most this many fractional digits by default (np.get_printoptions()["precision"]).
PRINT_PRECISION = 8


class SB3FileError(ValueError):
    """A stable-baselines3 file cannot be read safely; the message names the file and the key or type."""


class UnreadableSpaceError(SB3FileError):
    """A space's readable fields do not pin it down (missing, summarised, or rounded for its dtype)."""


# ---------------------------------------------------------------------------------------------- zips


class ZipData:
    """The JSON ``data`` and the tensors of an SB3 model zip, nothing executed.

    Attributes:
        data: the ``data`` JSON as parsed (``:serialized:`` entries left as dicts of readable fields).
        params: ``policy.pth``, the policy's state dict.
        variables: ``pytorch_variables.pth`` (SAC's ``log_ent_coef`` or ``ent_coef_tensor``), or ``{}``.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            with zipfile.ZipFile(self.path) as archive:
                names = set(archive.namelist())
                for member in ("data", "policy.pth"):
                    if member not in names:
                        raise SB3FileError(f"{self.path}: no '{member}' member; not a stable-baselines3 model zip")
                raw = archive.read("data")
                policy = archive.read("policy.pth")
                variables = archive.read("pytorch_variables.pth") if "pytorch_variables.pth" in names else None
        except (OSError, zipfile.BadZipFile) as error:
            raise SB3FileError(f"{self.path}: not a readable zip file ({error})") from None
        try:
            self.data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as error:
            raise SB3FileError(f"{self.path}: member 'data' is not JSON ({error})") from None
        if not isinstance(self.data, dict):
            raise SB3FileError(f"{self.path}: member 'data' is not a JSON object")
        self.params = self._tensors(policy, "policy.pth")
        self.variables = self._tensors(variables, "pytorch_variables.pth") if variables is not None else {}

    def _tensors(self, raw: bytes, member: str) -> dict[str, th.Tensor]:
        try:
            loaded = th.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
        except Exception as error:  # torch's weights-only unpickler refuses anything but tensors and containers
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise SB3FileError(f"{self.path}: member '{member}' is not a plain tensor file ({first})") from None
        if not isinstance(loaded, dict) or not all(isinstance(v, th.Tensor) for v in loaded.values()):
            raise SB3FileError(f"{self.path}: member '{member}' is not a dict of tensors")
        for name, tensor in loaded.items():
            if tensor.is_floating_point() and not bool(th.isfinite(tensor).all()):
                raise SB3FileError(
                    f"{self.path}: tensor '{name}' of '{member}' holds NaN or infinite values; "
                    "a diverged checkpoint cannot be analysed"
                )
        return loaded

    def plain(self, key: str) -> Any:
        """A JSON value of ``data``; raises for a ``:serialized:`` one."""
        value = self.data[key]
        if is_serialized(value):
            raise SB3FileError(f"{self.path}: '{key}' is stored only as a pickle, which is not read")
        return value

    def fields(self, key: str) -> dict[str, Any]:
        """The readable fields beside a ``:serialized:`` entry (the JSON dict itself for a plain dict)."""
        value = self.data.get(key)
        if not isinstance(value, dict):
            raise SB3FileError(f"{self.path}: '{key}' is missing from 'data' or not an object")
        return {k: v for k, v in value.items() if k not in (SERIALIZED, ":type:")}


def is_serialized(value: Any) -> bool:
    return isinstance(value, dict) and SERIALIZED in value


def algorithm(zipped: ZipData) -> str:
    """``ppo``, ``sac`` or ``td3`` from the data keys and the state dict; others refused by name."""
    data, keys = zipped.data, set(zipped.params)
    prefixes = {key.split(".")[0] for key in keys}
    module = data.get("policy_class", {}).get("__module__", "?") if isinstance(data.get("policy_class"), dict) else "?"
    if "policy_delay" in data and {"actor", "actor_target", "critic", "critic_target"} <= prefixes:
        return "td3"
    if "target_entropy" in data and {"actor", "critic", "critic_target"} <= prefixes:
        return "sac"
    if "clip_range" in data and {"mlp_extractor", "action_net", "value_net"} <= prefixes:
        return "ppo"
    raise SB3FileError(
        f"{zipped.path}: a model of an unsupported algorithm (policy class from {module}, "
        f"parameters {sorted(prefixes)}); expected PPO, SAC or TD3"
    )


def box_space(zipped: ZipData, key: str) -> gym.spaces.Box:
    """A Box space rebuilt from the readable fields SB3 stores beside its pickle."""
    value = zipped.data.get(key)
    if not is_serialized(value):
        raise SB3FileError(f"{zipped.path}: '{key}' is missing from 'data'")
    kind = value.get(":type:", "?")
    if kind not in BOX_TYPES:
        raise SB3FileError(
            f"{zipped.path}: '{key}' is {kind}; only continuous (Box) spaces can be analysed"
            + (" (PPO, SAC and TD3 need a Box action space)" if key == "action_space" else "")
        )
    fields = zipped.fields(key)
    try:
        dtype = np.dtype(str(fields["dtype"]))
        shape = tuple(int(n) for n in fields["_shape"])
        low = parse_array(str(fields["low"]), dtype, shape)
        high = parse_array(str(fields["high"]), dtype, shape)
    except KeyError as error:
        raise UnreadableSpaceError(
            f"{zipped.path}: '{key}' lacks the readable field {error}; pass --spaces-from-env with --env-id"
        ) from None
    except (TypeError, ValueError) as error:
        raise UnreadableSpaceError(
            f"{zipped.path}: '{key}': {error}; pass --spaces-from-env with --env-id to take the spaces from the env"
        ) from None
    try:
        return gym.spaces.Box(low=low, high=high, shape=shape, dtype=dtype)
    except (TypeError, ValueError, AssertionError) as error:
        raise SB3FileError(f"{zipped.path}: '{key}' is not a valid Box ({error})") from None


_TOKEN = re.compile(r"^[+-]?(inf|nan|\d+\.?\d*(e[+-]?\d+)?)$")


def parse_array(text: str, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    """numpy's ``str()`` of an array back to the array, refusing text that does not pin the values down.

    Refused: summarised arrays (``...``), a wrong number of values, text that does not print back as
    stored, and floats whose printed digits may be a rounding of another value of ``dtype``.
    """
    if "..." in text:
        raise ValueError(f"the array is summarised with '...' by numpy's printing ({text[:60]!r})")
    tokens = text.replace("[", " ").replace("]", " ").split()
    if len(tokens) != int(np.prod(shape, dtype=np.int64)):
        raise ValueError(f"{len(tokens)} values printed for shape {shape}")
    for token in tokens:
        if not _TOKEN.match(token):
            raise ValueError(f"{token!r} is not a number")
        if dtype.kind == "f" and _rounded(token, dtype):
            raise ValueError(
                f"{token!r} may be rounded (numpy prints {PRINT_PRECISION} digits), which does not pin down a {dtype}"
            )
    if dtype.kind == "f":
        values = np.array([float(token) for token in tokens], dtype=np.float64).astype(dtype)
    elif dtype.kind in "iu":
        values = np.array([int(token.rstrip(".")) for token in tokens], dtype=dtype)
    else:
        raise ValueError(f"dtype {dtype} is not supported")
    array = values.reshape(shape)
    if " ".join(str(array).split()) != " ".join(text.split()):
        raise ValueError(f"the values do not print back as stored ({text[:60]!r}); not numpy's default format")
    return array


def _rounded(token: str, dtype: np.dtype) -> bool:
    """Whether the printed float may stand for another value than the one it parses to.

    numpy's default 'maxprec' mode prints a float with at most ``PRINT_PRECISION`` fractional digits (of
    the mantissa, in scientific notation) and trims trailing zeros, so any token may be a rounding. It
    still pins the value down when the rounding step is smaller than the gap to the value's neighbours in
    ``dtype``: always for float32 in scientific notation and above 0.17 in positional notation, for float64
    only far above 10^7.
    """
    mantissa, _, exponent = token.lower().lstrip("+-").partition("e")
    if mantissa in ("inf", "nan"):
        return False
    value = np.array(float(token)).astype(dtype)
    up, down = np.nextafter(value, dtype.type(np.inf)), np.nextafter(value, dtype.type(-np.inf))
    gap = min(float(up) - float(value), float(value) - float(down))
    return not 10.0 ** (int(exponent or 0) - PRINT_PRECISION) < gap


_ACTIVATION = re.compile(r"^<class '([\w.]+)'>$")


def policy_kwargs(zipped: ZipData) -> dict[str, Any]:
    """``policy_kwargs`` as JSON values; ``activation_fn`` as the class's dotted name (``torch.nn...ReLU``)."""
    value = zipped.data.get("policy_kwargs", {})
    kwargs = zipped.fields("policy_kwargs") if is_serialized(value) else dict(value)
    if "activation_fn" in kwargs:
        match = _ACTIVATION.match(str(kwargs["activation_fn"]))
        if not match:
            raise SB3FileError(
                f"{zipped.path}: policy_kwargs 'activation_fn' {kwargs['activation_fn']!r} is not a class"
            )
        kwargs["activation_fn"] = match.group(1)
    return kwargs


_NUMBER = r"(?:np\.float(?:16|32|64)\()?([-+]?(?:\d+\.?\d*(?:e[-+]?\d+)?|inf))\)?"
_SCHEDULES = {
    "ConstantSchedule": re.compile(rf"^ConstantSchedule\(val={_NUMBER}\)$"),
    "LinearSchedule": re.compile(rf"^LinearSchedule\(start={_NUMBER}, end={_NUMBER}, end_fraction={_NUMBER}\)$"),
}


def initial_value(value: Any) -> float | None:
    """A schedule's value at the start of training (progress remaining 1) from its readable fields.

    SB3 2.x's FloatSchedule stores ``value_schedule`` as the repr of a ConstantSchedule or LinearSchedule;
    those two also appear on their own (fields ``val``; ``start``). None if the value cannot be read.
    """
    if not is_serialized(value):
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    kind = str(value.get(":type:", ""))
    if kind.endswith(".ConstantSchedule'>") and isinstance(value.get("val"), (int, float)):
        return float(value["val"])
    if kind.endswith(".LinearSchedule'>") and isinstance(value.get("start"), (int, float)):
        return float(value["start"])
    if kind.endswith(".FloatSchedule'>"):
        inner = value.get("value_schedule")
        if isinstance(inner, (int, float)):
            return float(inner)
        for pattern in _SCHEDULES.values():
            match = pattern.match(str(inner))
            if match:
                return float(match.group(1))
    return None


# ------------------------------------------------------------------------------------------- pickles


class StandIn:
    """An inert object in place of a library class named in a pickle: it holds the pickled state as
    attributes and runs no code of the class it stands for."""

    qualified_name = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> StandIn:
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.__dict__["_args"] = args

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2 and all(s is None or isinstance(s, dict) for s in state):
            for part in state:
                self.__dict__.update(part or {})
        elif isinstance(state, dict):
            self.__dict__.update(state)
        else:
            self.__dict__["_state"] = state

    def __repr__(self) -> str:
        return f"<stand-in for {self.qualified_name}>"


_STAND_IN_NAMES = (
    "stable_baselines3.common.vec_env.vec_normalize.VecNormalize",
    "stable_baselines3.common.running_mean_std.RunningMeanStd",
    "stable_baselines3.common.buffers.ReplayBuffer",
    "gymnasium.spaces.box.Box",
    "gymnasium.spaces.discrete.Discrete",
    "gym.spaces.box.Box",
    "gym.spaces.discrete.Discrete",
    "torch.device",
    "numpy.random._pickle.__generator_ctor",
    "numpy.random._pickle.__bit_generator_ctor",
    "numpy.random._pickle.__randomstate_ctor",
    "numpy.random._pcg64.PCG64",
    "numpy.random._pcg64.PCG64DXSM",
    "numpy.random._mt19937.MT19937",
    "numpy.random._philox.Philox",
    "numpy.random._sfc64.SFC64",
    "numpy.random.bit_generator.SeedSequence",
    "numpy.random.bit_generator.__pyx_unpickle_SeedSequence",
)
VEC_NORMALIZE = "stable_baselines3.common.vec_env.vec_normalize.VecNormalize"
REPLAY_BUFFER = "stable_baselines3.common.buffers.ReplayBuffer"
STAND_INS: dict[str, type[StandIn]] = {
    name: type(name.rsplit(".", 1)[1].strip("_"), (StandIn,), {"qualified_name": name}) for name in _STAND_IN_NAMES
}
_NUMPY = {
    "numpy.ndarray": np.ndarray,
    "numpy.dtype": np.dtype,
    "numpy._core.multiarray._reconstruct": np._core.multiarray._reconstruct,
    "numpy.core.multiarray._reconstruct": np._core.multiarray._reconstruct,
    "numpy._core.multiarray.scalar": np._core.multiarray.scalar,
    "numpy.core.multiarray.scalar": np._core.multiarray.scalar,
    "numpy._core.numeric._frombuffer": np._core.numeric._frombuffer,
    "numpy.core.numeric._frombuffer": np._core.numeric._frombuffer,
}
for _name in ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool_"):
    _NUMPY[f"numpy.dtypes.{type(np.dtype(_name)).__name__}"] = type(np.dtype(_name))


class SafeUnpickler(pickle.Unpickler):
    """An unpickler whose globals are numpy's array reconstruction or inert stand-ins, nothing else."""

    def __init__(self, stream, path: Path):
        super().__init__(stream)
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        qualified = f"{module}.{name}"
        if qualified in _NUMPY:
            return _NUMPY[qualified]
        if qualified in STAND_INS:
            return STAND_INS[qualified]
        raise SB3FileError(
            f"{self.path}: the pickle names {qualified}, which a VecNormalize or replay-buffer file does not "
            "need; refused (nothing was executed). If you created this file yourself, pass --trust"
        )


def load_pickle(path: Path, what: str, expected: str) -> StandIn:
    """A pickle through ``SafeUnpickler``; its top object must stand in for ``expected`` (``module.name``)."""
    try:
        with open(path, "rb") as stream:
            obj = SafeUnpickler(stream, Path(path)).load()
    except SB3FileError:
        raise
    except Exception as error:
        raise SB3FileError(f"{path}: not a readable {what} pickle ({type(error).__name__}: {error})") from None
    found = getattr(obj, "qualified_name", type(obj).__name__)
    if not isinstance(obj, STAND_INS[expected]):
        raise SB3FileError(f"{path}: holds {found}, not a {what} ({expected})")
    return obj
