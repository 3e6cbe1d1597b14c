"""One loaded model version: a SavedModel loaded by its SignatureDefs into a TF1 Graph and Session.

TF Serving loads a SavedModel's MetaGraphDef and runs its SignatureDefs by tensor name; it never
rebuilds Python objects. `tf.saved_model.load` does rebuild them (and restores every checkpointed
object), which fails on models written by old TensorFlow, such as the article's TF 2.4 model with
its optimizer slots. The v1 loader (`tf.compat.v1.saved_model.loader.load`) does what TF Serving
does, so every model TF Serving can serve loads here too.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf.message import DecodeError
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2

from model_server import tensors
from model_server.errors import ServingError, from_exception, invalid_argument

DEFAULT_SIGNATURE = "serving_default"


@dataclass(frozen=True)
class TensorSpec:
    alias: str
    tensor_name: str
    dtype: int  # tensorflow DataType enum
    shape: tuple[int, ...] | None  # None = unknown rank; -1 = any size

    @classmethod
    def from_info(cls, alias: str, info: meta_graph_pb2.TensorInfo) -> TensorSpec:
        shape = info.tensor_shape
        dims = None if shape.unknown_rank else tuple(d.size for d in shape.dim)
        return cls(alias, info.name, info.dtype, dims)

    def describe_shape(self) -> str:
        if self.shape is None:
            return "<unknown rank>"
        return "[" + ",".join(map(str, self.shape)) + "]"

    def accepts_shape(self, shape: tuple[int, ...]) -> bool:
        if self.shape is None:
            return True
        return len(shape) == len(self.shape) and all(
            want < 0 or want == got for want, got in zip(self.shape, shape, strict=True))


def _keys(names) -> str:
    return ",".join(sorted(names))


class CallableSignature:
    """A SignatureDef made callable: validated feeds, fetches by alias, cached session callables."""

    def __init__(self, name: str, definition: meta_graph_pb2.SignatureDef,
                 session: tf.compat.v1.Session) -> None:
        self.name = name
        self.definition = definition
        self.inputs = {a: TensorSpec.from_info(a, i) for a, i in definition.inputs.items()}
        self.outputs = {a: TensorSpec.from_info(a, i) for a, i in definition.outputs.items()}
        self.input_order = tuple(sorted(self.inputs))  # feed order of every callable
        self._session = session
        self._callables: dict[tuple[str, ...], object] = {}
        self._lock = threading.Lock()

    def check_input_aliases(self, aliases) -> None:
        """TF Serving's checks, in its order: the count of inputs, then each alias."""
        sent = set(aliases)
        if len(sent) != len(self.inputs):
            extra = sent - set(self.inputs)
            missing = set(self.inputs) - sent
            raise invalid_argument(
                f"input size does not match signature: {len(sent)}!={len(self.inputs)} "
                f"len({{{_keys(sent)}}}) != len({{{_keys(self.inputs)}}}). "
                f"Sent extra: {{{_keys(extra)}}}. Missing but required: {{{_keys(missing)}}}.")
        for alias in sorted(sent):
            if alias not in self.inputs:
                raise invalid_argument(
                    f"input tensor alias not found in signature: {alias}. "
                    f"Inputs expected to be in the set {{{_keys(self.inputs)}}}.")

    def output_aliases(self, output_filter) -> tuple[str, ...]:
        """The outputs a request asks for (all when the filter is empty), validated."""
        if not output_filter:
            return tuple(sorted(self.outputs))
        seen: set[str] = set()
        for alias in output_filter:
            if alias not in self.outputs:
                raise invalid_argument(
                    f"output tensor alias not found in signature: {alias} "
                    f"Outputs expected to be in the set {{{_keys(self.outputs)}}}.")
            if alias in seen:
                raise invalid_argument(f"duplicate output tensor alias: {alias}")
            seen.add(alias)
        return tuple(output_filter)

    def check_input(self, alias: str, array: np.ndarray) -> None:
        """Dtype and shape against the signature, before TensorFlow sees the feed."""
        spec = self.inputs[alias]
        dtype = tensors.numpy_dtype(array).enum
        if dtype != spec.dtype:
            index = self.input_order.index(alias)
            raise invalid_argument(
                f"Expects arg[{index}] to be {tensors.dtype_name(spec.dtype)} but "
                f"{tensors.dtype_name(dtype)} is provided (input tensor alias {alias})")
        if not spec.accepts_shape(array.shape):
            got = "[" + ",".join(map(str, array.shape)) + "]"
            raise invalid_argument(
                f"input tensor alias {alias} has shape {got}, but the signature expects "
                f"{spec.describe_shape()} (-1 = any size)")

    def _callable(self, outputs: tuple[str, ...]):
        fn = self._callables.get(outputs)
        if fn is None:
            with self._lock:
                fn = self._callables.get(outputs)
                if fn is None:
                    graph = self._session.graph
                    feeds = [graph.get_tensor_by_name(self.inputs[a].tensor_name)
                             for a in self.input_order]
                    fetches = [graph.get_tensor_by_name(self.outputs[a].tensor_name)
                               for a in outputs]
                    fn = self._session.make_callable(fetches, feed_list=feeds)
                    self._callables[outputs] = fn
        return fn

    def run(self, inputs: dict[str, np.ndarray], outputs: tuple[str, ...]) -> dict[str, np.ndarray]:
        """Run the signature on validated inputs; TensorFlow errors keep TensorFlow's codes."""
        try:
            results = self._callable(outputs)(*(inputs[a] for a in self.input_order))
        except tf.errors.OpError as error:
            raise from_exception(error) from None
        return dict(zip(outputs, results, strict=True))


class Servable:
    """A loaded version. Requests hold it with acquire()/release(); unload waits for them."""

    def __init__(self, name: str, version: int, path: Path, session: tf.compat.v1.Session,
                 meta_graph: meta_graph_pb2.MetaGraphDef) -> None:
        self.name = name
        self.version = version
        self.path = path
        self.session = session
        self.meta_graph = meta_graph
        self.signatures = {key: CallableSignature(key, definition, session)
                           for key, definition in meta_graph.signature_def.items()}
        self._users = 0
        self._closing = False
        self._idle = threading.Condition()

    def signature(self, name: str) -> CallableSignature:
        key = name or DEFAULT_SIGNATURE
        try:
            return self.signatures[key]
        except KeyError:
            raise ServingError(grpc.StatusCode.FAILED_PRECONDITION,
                               f'Serving signature key "{key}" not found.') from None

    def acquire(self) -> bool:
        with self._idle:
            if self._closing:
                return False
            self._users += 1
            return True

    def release(self) -> None:
        with self._idle:
            self._users -= 1
            if self._users == 0:
                self._idle.notify_all()

    def unload(self, timeout: float | None = None) -> bool:
        """Refuse new requests, wait up to `timeout` seconds for those in flight, then free the
        session (which cancels a run still going). True if every request had finished."""
        with self._idle:
            self._closing = True
            drained = self._idle.wait_for(lambda: self._users == 0, timeout)
        self.session.close()
        return drained


def _read_saved_model(path: Path) -> None:
    """Fail like TF Serving's loader (DATA_LOSS) on a saved_model.pb that is not a SavedModel."""
    pb = path / "saved_model.pb"
    if not pb.is_file():
        return  # a saved_model.pbtxt: the loader reports its own errors
    try:
        saved_model_pb2.SavedModel.FromString(pb.read_bytes())
    except DecodeError:
        raise ServingError(grpc.StatusCode.DATA_LOSS,
                           f"Can't parse {pb} as binary proto") from None


def session_config(intra_op: int = 0, inter_op: int = 0) -> tf.compat.v1.ConfigProto:
    return tf.compat.v1.ConfigProto(intra_op_parallelism_threads=intra_op,
                                    inter_op_parallelism_threads=inter_op)


def load(name: str, version: int, path: Path, tags: list[str],
         config: tf.compat.v1.ConfigProto | None = None) -> Servable:
    """Load one version with the SignatureDef (v1) loader; ServingError on failure."""
    _read_saved_model(path)
    graph = tf.Graph()
    session = tf.compat.v1.Session(graph=graph, config=config)
    try:
        with graph.as_default(), _quiet_deprecation():
            meta_graph = tf.compat.v1.saved_model.loader.load(session, tags, str(path))
    except RuntimeError as error:
        session.close()
        if "could not be found in SavedModel" in str(error):
            raise ServingError(
                grpc.StatusCode.NOT_FOUND,
                f"Could not find meta graph def matching supplied tags: {{ {' '.join(tags)} }}. "
                "To inspect available tag-sets in the SavedModel, please use the SavedModel CLI: "
                "`saved_model_cli`") from None
        raise from_exception(error) from None
    except Exception as error:
        session.close()
        raise from_exception(error) from None
    graph.finalize()  # serving never adds ops; make_callable does not need to
    return Servable(name, version, path, session, meta_graph)


@contextlib.contextmanager
def _quiet_deprecation():
    """The v1 loader is deprecated for new code, but it is exactly what serving needs."""
    try:
        from tensorflow.python.util import deprecation
    except ImportError:  # pragma: no cover - TensorFlow moved its internals
        yield
        return
    with deprecation.silence():
        yield
