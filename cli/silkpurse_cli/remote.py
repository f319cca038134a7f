"""The remote runner (``silkpurse enhance --remote``): the same plan and the same walker as the
embedded runner, with every stage called through its gRPC service over the shared store
(:mod:`silkpurse.service.remote`).

It reads top to bottom: probe the input here, plan it with the model replicas' identities,
upload the input into the store, and hand the plan to the :class:`~silkpurse.walker.PlanWalker`
with :class:`~silkpurse.service.remote.RemoteStages`. The join writes the output into the
store; it is downloaded, checked and renamed into place here.
"""

from __future__ import annotations

import time
from pathlib import Path

from silkpurse.files import sha256_of
from silkpurse.media.probe import VideoInfo, probe
from silkpurse.plan import JobOptions, JobPlan
from silkpurse.progress import Reporter, SilentReporter
from silkpurse.service.client import input_key_of, output_key_of
from silkpurse.service.remote import RemoteStages, Services, plan_for_replicas
from silkpurse.settings import Settings, get_settings
from silkpurse.store import open_store
from silkpurse.walker import EnhanceResult, PlanWalker
from silkpurse_encoder.encode import check_output


class RemotePipeline:
    """One enhance job through the services: the probed input, the replicas' models, the plan."""

    def __init__(
        self,
        source: Path,
        output: Path,
        options: JobOptions,
        *,
        keep_work: bool = False,
        reporter: Reporter | None = None,
        settings: Settings | None = None,
        services: Services | None = None,
    ) -> None:
        options.validate()
        self.settings = settings or get_settings()
        self.source, self.output, self.keep_work = source, output, keep_work
        self.reporter = reporter or SilentReporter()
        self.info: VideoInfo = probe(source)
        check_output(output, source)
        self.services = services or Services.from_settings(self.settings)
        self.store = open_store(self.settings)
        self.input_sha256 = sha256_of(source)
        self.plan: JobPlan = plan_for_replicas(self.info, self.input_sha256, options, self.services)

    def run(self) -> EnhanceResult:
        started = time.perf_counter()
        input_key = input_key_of(self.input_sha256, self.source)
        if not self.store.exists(input_key):
            self.store.upload(input_key, self.source)
        output_key = output_key_of(self.plan.job, self.output.name)
        calls = RemoteStages(self.services, self.store, self.plan.job, input_key, output_key)
        walker = PlanWalker(
            self.plan, self.info, calls, self.reporter, keep_work=self.keep_work, fanout=self.services.fanout
        )
        report = walker.run(self.output)
        if not self.keep_work:
            self.store.delete_prefix(f"outputs/{self.plan.job}")
        return walker.result(self.source, self.output, report, started)
