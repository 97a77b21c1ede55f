"""KEDA's external scaler (gRPC ``externalscaler.ExternalScaler``) over leadtime's decisions.

A ScaledObject with a trigger of ``type: external``, ``metricType: AverageValue`` and metadata
``scalerAddress: <leadtime>:<keda port>``, ``producerId: <id>`` drives its Deployment to the
``target_instances`` leadtime decided for that producer, one spin-up lead time ahead:

* ``GetMetricSpec`` answers one metric, ``leadtime-<producerId>``, with target size 1;
* ``GetMetrics`` answers the value ``target_instances`` (from the same pass as
  ``GET /v1/decisions``), so the HPA's replica count ``ceil(value / target)`` is exactly it;
* in ``dry_run`` mode the value is the producer's **current** instances: nothing moves;
* ``IsActive`` is true while that value is above 0 (scale to zero when ``min_instances`` is 0);
  ``StreamIsActive`` sends it at once, then after every pass that changes it;
* ``StreamMetricSpec`` sends the (constant) spec once and keeps the stream open.

Errors are gRPC statuses with a message: ``INVALID_ARGUMENT`` without ``producerId``,
``NOT_FOUND`` for a producer not in ``leadtime.yaml``, ``UNAVAILABLE`` before the first pass.
The server binds 127.0.0.1 unless told otherwise (``leadtime serve --keda-host``).
"""

from __future__ import annotations

import logging
import re
import threading
from concurrent import futures
from typing import Any

import grpc

from serving.keda import externalscaler_pb2 as pb
from serving.keda import externalscaler_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)
TARGET_SIZE = 1  # the HPA's AverageValue target: replicas = ceil(value / 1) = value


def metric_name(producer_id: str) -> str:
    """A metric name Kubernetes accepts, unique per producer.

    >>> metric_name("svc_1/A")
    'leadtime-svc-1-a'
    """
    return "leadtime-" + re.sub(r"[^a-z0-9.-]+", "-", producer_id.lower()).strip("-.")


class _Refused(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


class LeadtimeScaler(pb_grpc.ExternalScalerServicer):
    """The servicer; ``runtime`` is the API's :class:`serving.decisions.DecisionRuntime`."""

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime
        self.stopping = threading.Event()

    # --- what a ScaledObject asks about ------------------------------------------------------

    def replicas(self, ref: pb.ScaledObjectRef) -> tuple[str, int]:
        """The producer and the replica count to report: target, or current in dry run."""
        pid = ref.scalerMetadata.get("producerId", "").strip()
        if not pid:
            raise _Refused(grpc.StatusCode.INVALID_ARGUMENT,
                           f"ScaledObject {ref.namespace}/{ref.name}: the trigger's metadata "
                           "needs producerId (a producer of leadtime.yaml)")
        try:
            latest = self.runtime.latest()
        except LookupError as exc:
            raise _Refused(grpc.StatusCode.UNAVAILABLE, f"no decision yet: {exc}") from None
        decision = latest.fleet.decisions.get(pid)
        if decision is None:
            raise _Refused(grpc.StatusCode.NOT_FOUND,
                           f"producer {pid!r} is not in leadtime.yaml (ScaledObject "
                           f"{ref.namespace}/{ref.name})")
        if decision.dry_run:
            return pid, decision.current_instances
        return pid, decision.target_instances

    def _answer(self, context: grpc.ServicerContext, fn, *args):
        try:
            return fn(*args)
        except _Refused as exc:
            context.abort(exc.code, str(exc))

    # --- the protocol ------------------------------------------------------------------------

    def IsActive(self, request, context):
        _, n = self._answer(context, self.replicas, request)
        return pb.IsActiveResponse(result=n > 0)

    def StreamIsActive(self, request, context):
        _, n = self._answer(context, self.replicas, request)
        last = n > 0
        yield pb.IsActiveResponse(result=last)
        seen = self._pass_number()
        while context.is_active() and not self.stopping.is_set():
            seen = self._wait_for_pass(seen, timeout_s=1.0)
            try:
                _, n = self.replicas(request)
            except _Refused:
                continue  # keep the stream; the next pass may answer again
            if (n > 0) != last:
                last = n > 0
                yield pb.IsActiveResponse(result=last)

    def GetMetricSpec(self, request, context):
        pid, _ = self._answer(context, self.replicas, request)
        return self._spec(pid)

    def StreamMetricSpec(self, request, context):
        pid, _ = self._answer(context, self.replicas, request)
        yield self._spec(pid)  # the spec never changes: send it, then hold the stream open
        while context.is_active() and not self.stopping.wait(1.0):
            pass

    def GetMetrics(self, request, context):
        pid, n = self._answer(context, self.replicas, request.scaledObjectRef)
        name = request.metricName or metric_name(pid)
        return pb.GetMetricsResponse(metricValues=[
            pb.MetricValue(metricName=name, metricValue=n, metricValueFloat=float(n))])

    @staticmethod
    def _spec(pid: str) -> pb.GetMetricSpecResponse:
        return pb.GetMetricSpecResponse(metricSpecs=[
            pb.MetricSpec(metricName=metric_name(pid), targetSize=TARGET_SIZE,
                          targetSizeFloat=float(TARGET_SIZE))])

    def _pass_number(self) -> int:
        loop = self.runtime.loop
        return loop.latest.number if loop is not None and loop.latest is not None else 0

    def _wait_for_pass(self, seen: int, timeout_s: float) -> int:
        try:
            return self.runtime.latest(after_pass=seen, wait_s=timeout_s).number
        except LookupError:
            self.stopping.wait(timeout_s)
            return seen


class KedaServer:
    """The gRPC server: ``start()`` binds ``host:port`` (port 0: a free one), ``stop()``."""

    def __init__(self, runtime: Any, host: str = "127.0.0.1", port: int = 0,
                 workers: int = 8) -> None:
        self.scaler = LeadtimeScaler(runtime)
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers,
                                                             thread_name_prefix="keda"))
        pb_grpc.add_ExternalScalerServicer_to_server(self.scaler, self.server)
        self.host = host
        self.port = self.server.add_insecure_port(f"{host}:{port}")
        if self.port == 0:
            raise OSError(f"KEDA scaler: cannot bind {host}:{port}")

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> KedaServer:
        self.server.start()
        log.info("KEDA external scaler on %s", self.address)
        return self

    def stop(self, grace_s: float = 2.0) -> None:
        self.scaler.stopping.set()
        self.server.stop(grace_s).wait(grace_s + 1)
