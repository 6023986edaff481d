"""Reads a TensorBoard log directory with TensorBoard's own loader and prints JSON.

Usage: python read_tensorboard.py LOGDIR

Output: {"runs": {run: {"scalars": {tag: [[step, value], ...]},
                        "text": {tag: [[step, text], ...]},
                        "histograms": {tag: [[step, {"min", "max", "num", "sum", "sum_squares",
                                                     "bucket_limit", "bucket"}], ...]},
                        "hparams": {"start": {name: value} | null,
                                    "end": {"status": str, "end_time_secs": float} | null,
                                    "experiment": {"hparams": [[name, type]], "metrics": [tag]} | null}}},
         "warnings": [messages TensorBoard logged while loading, e.g. data loss],
         "session_groups": {group: {"hparams": {name: value},
                                    "metrics": {tag: [step, value]}}},
         "histogram_dashboard": {run: {tag: {"histograms": [[step, [[left, right, count], ...]], ...],
                                             "distributions": [[step, [[basis_points, value], ...]], ...]}}}}

"session_groups" is what the HParams dashboard shows (its own backend answering a
ListSessionGroups request over every metric column); "histogram_dashboard" is what the
Histograms and Distributions plugins answer for each histogram tag.

"session_groups" is what the HParams dashboard shows (its own backend answering a
ListSessionGroups request over every metric column).
"""

import json
import logging
import math
import sys

from tensorboard import context as tb_context
from tensorboard.backend.event_processing import data_provider, event_multiplexer, plugin_event_multiplexer
from tensorboard.plugins import base_plugin
from tensorboard.plugins.distribution import distributions_plugin
from tensorboard.plugins.histogram import histograms_plugin
from tensorboard.plugins.hparams import api_pb2, backend_context, list_session_groups, metadata
from tensorboard.util import tensor_util


class Collect(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.messages = []

    def emit(self, record):
        msg = record.getMessage()
        lower = msg.lower()
        if "truncated record" in lower or "crc" in lower or "data loss" in lower:
            self.messages.append(msg)


def number(v):
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    return v


def value_of(v):
    kind = v.WhichOneof("kind")
    return getattr(v, kind) if kind else None


def session_groups(logdir):
    """The HParams dashboard's table: session groups with hparams and metric values."""
    mux = plugin_event_multiplexer.EventMultiplexer().AddRunsFromDirectory(logdir)
    mux.Reload()
    provider = data_provider.MultiplexerDataProvider(mux, logdir)
    ctx = backend_context.Context(
        base_plugin.TBContext(logdir=logdir, multiplexer=mux, data_provider=provider)
    )
    request_ctx = tb_context.RequestContext()
    experiment = ctx.experiment_from_metadata(
        request_ctx,
        "",
        include_metrics=True,
        hparams_run_to_tag_to_content=ctx.hparams_metadata(request_ctx, ""),
        data_provider_hparams=ctx.hparams_from_data_provider(request_ctx, "", 1000),
    )
    request = api_pb2.ListSessionGroupsRequest(
        start_index=0,
        slice_size=1000,
        allowed_statuses=[
            api_pb2.STATUS_UNKNOWN,
            api_pb2.STATUS_SUCCESS,
            api_pb2.STATUS_FAILURE,
            api_pb2.STATUS_RUNNING,
        ],
    )
    for m in experiment.metric_infos:
        request.col_params.add(metric=m.name)
    for h in experiment.hparam_infos:
        request.col_params.add(hparam=h.name)
    response = list_session_groups.Handler(request_ctx, ctx, "", request).run()
    return {
        g.name: {
            "hparams": {k: value_of(v) for k, v in g.hparams.items()},
            "metrics": {
                m.name.tag: [m.training_step, number(m.value)] for m in g.metric_values
            },
        }
        for g in response.session_groups
    }


def histogram_dashboard(logdir):
    """What the Histograms and Distributions dashboards get from their plugins' backends."""
    mux = plugin_event_multiplexer.EventMultiplexer().AddRunsFromDirectory(logdir)
    mux.Reload()
    provider = data_provider.MultiplexerDataProvider(mux, logdir)
    context = base_plugin.TBContext(logdir=logdir, multiplexer=mux, data_provider=provider)
    histograms = histograms_plugin.HistogramsPlugin(context)
    distributions = distributions_plugin.DistributionsPlugin(context)
    ctx = tb_context.RequestContext()
    out = {}
    for run, tags in histograms.index_impl(ctx, experiment="").items():
        for tag in tags:
            events, _ = histograms.histograms_impl(ctx, tag, run, experiment="", downsample_to=100000)
            dists, _ = distributions.distributions_impl(ctx, tag, run, experiment="")
            out.setdefault(run, {})[tag] = {
                "histograms": [[step, [[number(x) for x in b] for b in buckets]] for _, step, buckets in events],
                "distributions": [[step, [[number(x) for x in p] for p in points]] for _, step, points in dists],
            }
    return out


def main(logdir):
    collect = Collect()
    logging.getLogger().addHandler(collect)
    logging.getLogger().setLevel(logging.DEBUG)
    mux = event_multiplexer.EventMultiplexer(
        size_guidance={"scalars": 0, "tensors": 0, "histograms": 0}
    ).AddRunsFromDirectory(logdir)
    mux.Reload()
    runs = {}
    for run in sorted(mux.Runs()):
        acc = mux.GetAccumulator(run)
        tags = acc.Tags()
        scalars = {
            tag: [[e.step, number(e.value)] for e in acc.Scalars(tag)]
            for tag in tags["scalars"]
        }
        text = {}
        for tag in tags["tensors"]:
            if acc.SummaryMetadata(tag).plugin_data.plugin_name != "text":
                continue
            text[tag] = [
                [e.step, tensor_util.make_ndarray(e.tensor_proto).item().decode("utf-8")]
                for e in acc.Tensors(tag)
            ]
        try:
            content = acc.PluginTagToContent("hparams")
        except KeyError:
            content = {}
        hparams = {"start": None, "end": None, "experiment": None}
        if metadata.SESSION_START_INFO_TAG in content:
            start = metadata.parse_session_start_info_plugin_data(content[metadata.SESSION_START_INFO_TAG])
            hparams["start"] = {k: value_of(v) for k, v in start.hparams.items()}
        if metadata.SESSION_END_INFO_TAG in content:
            end = metadata.parse_session_end_info_plugin_data(content[metadata.SESSION_END_INFO_TAG])
            hparams["end"] = {
                "status": api_pb2.Status.Name(end.status),
                "end_time_secs": end.end_time_secs,
            }
        if metadata.EXPERIMENT_TAG in content:
            exp = metadata.parse_experiment_plugin_data(content[metadata.EXPERIMENT_TAG])
            hparams["experiment"] = {
                "hparams": [[h.name, api_pb2.DataType.Name(h.type)] for h in exp.hparam_infos],
                "metrics": [m.name.tag for m in exp.metric_infos],
            }
        histograms = {
            tag: [
                [
                    e.step,
                    {
                        "min": number(e.histogram_value.min),
                        "max": number(e.histogram_value.max),
                        "num": e.histogram_value.num,
                        "sum": number(e.histogram_value.sum),
                        "sum_squares": number(e.histogram_value.sum_squares),
                        "bucket_limit": [number(x) for x in e.histogram_value.bucket_limit],
                        "bucket": list(e.histogram_value.bucket),
                    },
                ]
                for e in acc.Histograms(tag)
            ]
            for tag in tags["histograms"]
        }
        runs[run] = {"scalars": scalars, "text": text, "hparams": hparams, "histograms": histograms}
    groups = session_groups(logdir)
    dashboard = histogram_dashboard(logdir)
    json.dump(
        {"runs": runs, "warnings": collect.messages, "session_groups": groups, "histogram_dashboard": dashboard},
        sys.stdout,
    )


if __name__ == "__main__":
    main(sys.argv[1])
