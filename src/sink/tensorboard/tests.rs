//! Unit tests of the TensorBoard encoding (the real reader's tests are in `tests/`).

use super::frame::masked_crc;
use super::*;

#[test]
fn masked_crc_matches_the_tfrecord_reference() {
    // CRC32C check value of "123456789" is 0xE3069283 (RFC 3720).
    assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
    let expected = 0xE306_9283u32.rotate_right(15).wrapping_add(0xa282_ead8);
    assert_eq!(masked_crc(b"123456789"), expected);
    let mut out = Vec::new();
    frame_record(&mut out, b"abc");
    assert_eq!(out.len(), 8 + 4 + 3 + 4);
    assert_eq!(&out[..8], &3u64.to_le_bytes());
    assert_eq!(&out[12..15], b"abc");
}

#[test]
fn hand_encoded_scalar_events_equal_prost_encoding() {
    let dir = tempfile::tempdir().unwrap();
    let mut sink = TensorBoardSink::create(dir.path()).unwrap();
    for step in [0u64, 1, 300, 1 << 40] {
        let long = "x".repeat(200);
        let r = Record::new(0)
            .with_step(step)
            .with_field("loss", 0.5)
            .with_field("eval.acc", 1u64)
            .with_field(long.clone(), true)
            .with_field("loss", f64::NAN);
        sink.push_scalar_event(1.5, step, &r);
        let fast = sink.event.clone();
        let value = |tag: &str, v: f32| SummaryValue {
            tag: tag.into(),
            metadata: None,
            value: Some(Payload::SimpleValue(v)),
        };
        let reference = Event {
            wall_time: 1.5,
            step: step as i64,
            what: Some(What::Summary(Summary {
                value: vec![
                    value("loss", f32::NAN),
                    value("eval/acc", 1.0),
                    value(&long, 1.0),
                ],
            })),
        }
        .encode_to_vec();
        assert_eq!(fast, reference, "step {step}");
    }
    assert_eq!(varint_len(0), 1);
    assert_eq!(varint_len(127), 1);
    assert_eq!(varint_len(128), 2);
    assert_eq!(varint_len(u64::MAX), 10);
}

/// Decodes every event of a file, checking both CRCs of each record.
fn read_events(path: &Path) -> Vec<Event> {
    let data = std::fs::read(path).unwrap();
    let mut at = 0;
    let mut events = Vec::new();
    while at < data.len() {
        let len_bytes = &data[at..at + 8];
        let len = u64::from_le_bytes(len_bytes.try_into().unwrap()) as usize;
        let crc = u32::from_le_bytes(data[at + 8..at + 12].try_into().unwrap());
        assert_eq!(crc, masked_crc(len_bytes));
        let body = &data[at + 12..at + 12 + len];
        let crc = u32::from_le_bytes(data[at + 12 + len..at + 16 + len].try_into().unwrap());
        assert_eq!(crc, masked_crc(body));
        events.push(Event::decode(body).unwrap());
        at += 16 + len;
    }
    events
}

#[test]
fn a_full_disk_loses_nothing_once_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let mut sink = TensorBoardSink::create(dir.path()).unwrap();
    let dev_full = std::fs::OpenOptions::new()
        .append(true)
        .open("/dev/full")
        .unwrap();
    let real = sink.out.replace_file(dev_full);
    let batch: Vec<Arc<Record>> = (0..50)
        .map(|i| Arc::new(Record::new(0).with_step(i).with_field("loss", i as f64)))
        .collect();
    sink.write_batch(&batch).unwrap();
    let err = sink.flush().unwrap_err().to_string();
    assert!(err.contains("No space left on device"), "{err}");
    sink.out.replace_file(real);
    sink.close(RunOutcome::Completed).unwrap();
    let events = read_events(sink.path());
    assert_eq!(events.len(), 51);
    assert_eq!(
        events[0].what,
        Some(What::FileVersion("brain.Event:2".into()))
    );
    let steps: Vec<i64> = events[1..].iter().map(|e| e.step).collect();
    assert_eq!(steps, (0..50).collect::<Vec<_>>());
}

#[test]
fn event_files_in_the_same_second_get_distinct_names() {
    let dir = tempfile::tempdir().unwrap();
    let a = TensorBoardSink::create(dir.path()).unwrap();
    let b = TensorBoardSink::create(dir.path()).unwrap();
    assert_ne!(a.path(), b.path());
    let name = a.path().file_name().unwrap().to_str().unwrap();
    assert!(name.starts_with("events.out.tfevents."), "{name}");
}
