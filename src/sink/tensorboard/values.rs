//! Summary values of the non-scalar kinds: Markdown text, HParams plugin records.

use prost::Message as _;

use super::proto::*;

/// A text summary: Text plugin metadata and a scalar (rank-0) string tensor, which
/// TensorBoard renders as Markdown.
pub(super) fn text_value(tag: String, text: &str) -> SummaryValue {
    SummaryValue {
        tag,
        metadata: Some(plugin_metadata("text", Vec::new())),
        value: Some(Payload::Tensor(TensorProto {
            dtype: DT_STRING,
            tensor_shape: Some(TensorShapeProto { dim: Vec::new() }),
            float_val: Vec::new(),
            string_val: vec![text.as_bytes().to_vec()],
        })),
    }
}

/// A Markdown table (the Text plugin renders Markdown) with `|` and line breaks escaped.
pub(super) fn markdown_table<'a>(
    header: [&str; 2],
    rows: impl Iterator<Item = (&'a str, &'a str)>,
) -> String {
    let cell = |s: &str| s.replace('|', "\\|").replace(['\n', '\r'], " ");
    let mut out = format!("| {} | {} |\n|---|---|\n", header[0], header[1]);
    for (k, v) in rows {
        out.push_str(&format!("| {} | {} |\n", cell(k), cell(v)));
    }
    out
}

/// An HParams plugin record: the data in the metadata, an empty float tensor as value.
pub(super) fn hparams_value(tag: &str, data: HParamsData) -> SummaryValue {
    let content = HParamsPluginData {
        version: 0,
        data: Some(data),
    }
    .encode_to_vec();
    SummaryValue {
        tag: tag.into(),
        metadata: Some(plugin_metadata("hparams", content)),
        value: Some(Payload::Tensor(TensorProto {
            dtype: DT_FLOAT,
            tensor_shape: Some(TensorShapeProto {
                dim: vec![Dim { size: 0 }],
            }),
            float_val: Vec::new(),
            string_val: Vec::new(),
        })),
    }
}

pub(super) fn plugin_metadata(plugin: &str, content: Vec<u8>) -> SummaryMetadata {
    SummaryMetadata {
        plugin_data: Some(PluginData {
            plugin_name: plugin.into(),
            content,
        }),
        data_class: DATA_CLASS_TENSOR,
    }
}
