//! The subset of `wandb/proto/wandb_internal.proto` trainlog writes (field numbers checked
//! against wandb 0.21's descriptors).

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct WbRecord {
    #[prost(int64, tag = "1")]
    pub(crate) num: i64,
    #[prost(oneof = "RecordType", tags = "2, 3, 5, 17, 18, 20, 21")]
    pub(crate) record_type: Option<RecordType>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub(crate) enum RecordType {
    #[prost(message, tag = "2")]
    History(HistoryRecord),
    #[prost(message, tag = "3")]
    Summary(SummaryRecord),
    #[prost(message, tag = "5")]
    Config(ConfigRecord),
    #[prost(message, tag = "17")]
    Run(RunRecord),
    #[prost(message, tag = "18")]
    Exit(RunExitRecord),
    #[prost(message, tag = "20")]
    Final(FinalRecord),
    #[prost(message, tag = "21")]
    Header(HeaderRecord),
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct RunRecord {
    #[prost(string, tag = "1")]
    pub(crate) run_id: String,
    #[prost(string, tag = "2")]
    pub(crate) entity: String,
    #[prost(string, tag = "3")]
    pub(crate) project: String,
    #[prost(string, tag = "8")]
    pub(crate) display_name: String,
    #[prost(string, repeated, tag = "10")]
    pub(crate) tags: Vec<String>,
    #[prost(string, tag = "13")]
    pub(crate) host: String,
    /// The step a resumed run's history goes on from.
    #[prost(int64, tag = "14")]
    pub(crate) starting_step: i64,
    #[prost(message, optional, tag = "17")]
    pub(crate) start_time: Option<Timestamp>,
    #[prost(bool, tag = "18")]
    pub(crate) resumed: bool,
}

/// `google.protobuf.Timestamp`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Timestamp {
    #[prost(int64, tag = "1")]
    pub(crate) seconds: i64,
    #[prost(int32, tag = "2")]
    pub(crate) nanos: i32,
}

/// A key and its JSON value: `ConfigItem`, `HistoryItem` and `SummaryItem` share it.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Item {
    #[prost(string, tag = "1")]
    pub(crate) key: String,
    #[prost(string, tag = "16")]
    pub(crate) value_json: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ConfigRecord {
    #[prost(message, repeated, tag = "1")]
    pub(crate) update: Vec<Item>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct HistoryRecord {
    #[prost(message, repeated, tag = "1")]
    pub(crate) item: Vec<Item>,
    #[prost(message, optional, tag = "2")]
    pub(crate) step: Option<HistoryStep>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct HistoryStep {
    #[prost(int64, tag = "1")]
    pub(crate) num: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct SummaryRecord {
    #[prost(message, repeated, tag = "1")]
    pub(crate) update: Vec<Item>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct RunExitRecord {
    #[prost(int32, tag = "1")]
    pub(crate) exit_code: i32,
    #[prost(int32, tag = "2")]
    pub(crate) runtime: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct HeaderRecord {}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct FinalRecord {}
