//! System metrics: a sampler thread that sends `system.*` records to the sinks every
//! interval ([`MetricLoggerBuilder::system_metrics`](crate::MetricLoggerBuilder::system_metrics)
//! or `TRAINLOG_SYSTEM_METRICS=10s`).
//!
//! On Linux it reads `/proc` (no dependency): `system.cpu.percent` (this process, 100 = one
//! core busy), `system.memory.rss_bytes`, and `system.memory.host_used_percent`. With the
//! `gpu` feature, per GPU from NVIDIA's NVML (loaded at run time, when the driver is
//! installed): `system.gpu.<i>.utilization_percent`, `.memory_used_bytes`,
//! `.temperature_c`, `.power_watts`. Fields it cannot read are absent, never an error.

use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, RecvTimeoutError, Sender};

use crate::worker::Feeder;
use crate::{Record, Value};

/// Linux reports process CPU time in clock ticks of `USER_HZ`, which the kernel fixes at
/// 100 for user space on every architecture (`sysconf(_SC_CLK_TCK)`).
const USER_HZ: f64 = 100.0;

/// The running sampler; dropping it (or [`stop`](Self::stop)) ends the thread.
#[derive(Debug)]
pub(crate) struct Sampler {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Sampler {
    /// Starts sampling every `every`, sending each sample to every feeder as a record of
    /// `rank`.
    pub(crate) fn start(every: Duration, feeders: Vec<Feeder>, rank: u32) -> std::io::Result<Self> {
        let (stop, stopped) = bounded::<()>(0);
        let thread = std::thread::Builder::new()
            .name("trainlog-system".into())
            .spawn(move || {
                let mut cpu = CpuClock::new();
                // Loading NVML takes a moment: here, not in `build()`.
                #[cfg(feature = "gpu")]
                let gpus = gpu::Gpus::load();
                loop {
                    match stopped.recv_timeout(every) {
                        Err(RecvTimeoutError::Timeout) => {}
                        // A stop message, or the sender dropped: done.
                        _ => return,
                    }
                    let mut record = Record::new(rank);
                    record.fields = sample(&mut cpu);
                    #[cfg(feature = "gpu")]
                    gpus.sample(&mut record.fields);
                    if record.fields.is_empty() {
                        continue;
                    }
                    for feeder in &feeders {
                        feeder.send(record.clone());
                    }
                }
            })?;
        Ok(Sampler {
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Stops the thread and waits for it (at most one sample in progress).
    pub(crate) fn stop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The process's CPU time at the last sample, for the percentage since then.
struct CpuClock {
    last: Option<(Instant, f64)>,
}

impl CpuClock {
    fn new() -> Self {
        CpuClock {
            last: process_cpu_seconds().map(|s| (Instant::now(), s)),
        }
    }

    /// CPU use since the last call, in percent of one core.
    fn percent(&mut self) -> Option<f64> {
        let now = (Instant::now(), process_cpu_seconds()?);
        let last = self.last.replace(now)?;
        let wall = now.0.duration_since(last.0).as_secs_f64();
        (wall > 0.0).then(|| (now.1 - last.1).max(0.0) / wall * 100.0)
    }
}

/// One sample's fields (those that could be read).
fn sample(cpu: &mut CpuClock) -> Vec<(crate::Key, Value)> {
    let mut fields = Vec::new();
    if let Some(p) = cpu.percent() {
        fields.push(("system.cpu.percent".into(), Value::F64(p)));
    }
    if let Some(rss) = status_kib("VmRSS:") {
        fields.push(("system.memory.rss_bytes".into(), Value::U64(rss * 1024)));
    }
    if let Some(used) = host_memory_used_percent() {
        fields.push(("system.memory.host_used_percent".into(), Value::F64(used)));
    }
    fields
}

/// User plus system CPU time of this process: fields 14 and 15 of `/proc/self/stat`.
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces; the fields after it follow its `)`.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // `rest` starts at field 3; utime and stime are fields 14 and 15.
    let utime: f64 = fields.nth(11)?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / USER_HZ)
}

/// A `kB` line of `/proc/self/status`, e.g. `VmRSS:`.
fn status_kib(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    kib_line(&status, key)
}

fn kib_line(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(key))?;
    line[key.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// `(MemTotal - MemAvailable) / MemTotal` from `/proc/meminfo`, in percent.
fn host_memory_used_percent() -> Option<f64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let total = kib_line(&meminfo, "MemTotal:")? as f64;
    let available = kib_line(&meminfo, "MemAvailable:")? as f64;
    (total > 0.0).then(|| (total - available) / total * 100.0)
}

#[cfg(feature = "gpu")]
mod gpu {
    use nvml_wrapper::enum_wrappers::device::TemperatureSensor;
    use nvml_wrapper::Nvml;

    use crate::{Key, Value};

    /// NVML, if its library could be loaded and initialised.
    pub(super) struct Gpus(Option<Nvml>);

    impl Gpus {
        pub(super) fn load() -> Gpus {
            Gpus(Nvml::init().ok())
        }

        /// Each GPU's readings that the device supports.
        pub(super) fn sample(&self, fields: &mut Vec<(Key, Value)>) {
            let Some(nvml) = &self.0 else { return };
            let Ok(count) = nvml.device_count() else {
                return;
            };
            for i in 0..count {
                let Ok(device) = nvml.device_by_index(i) else {
                    continue;
                };
                let mut push = |name: &str, value: Value| {
                    fields.push((format!("system.gpu.{i}.{name}").into(), value));
                };
                if let Ok(rates) = device.utilization_rates() {
                    push("utilization_percent", Value::F64(f64::from(rates.gpu)));
                }
                if let Ok(memory) = device.memory_info() {
                    push("memory_used_bytes", Value::U64(memory.used));
                }
                if let Ok(celsius) = device.temperature(TemperatureSensor::Gpu) {
                    push("temperature_c", Value::F64(f64::from(celsius)));
                }
                // NVML reports milliwatts.
                if let Ok(milliwatts) = device.power_usage() {
                    push("power_watts", Value::F64(f64::from(milliwatts) / 1000.0));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kib_lines_parse() {
        let text = "Name:\tx\nVmRSS:\t  123456 kB\nThreads:\t3\n";
        assert_eq!(kib_line(text, "VmRSS:"), Some(123_456));
        assert_eq!(kib_line(text, "VmSwap:"), None);
    }

    /// Without NVIDIA's driver (this machine, CI) loading NVML fails quietly and a sample
    /// has no GPU fields.
    #[cfg(feature = "gpu")]
    #[test]
    fn no_nvml_means_no_gpu_fields_and_no_error() {
        let gpus = gpu::Gpus::load();
        let mut fields = Vec::new();
        gpus.sample(&mut fields);
        let has_driver = std::path::Path::new("/proc/driver/nvidia").exists();
        assert!(has_driver || fields.is_empty(), "{fields:?}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_has_cpu_time_and_memory() {
        assert!(process_cpu_seconds().is_some());
        let rss = status_kib("VmRSS:").unwrap();
        assert!(rss > 100, "{rss} kB");
        let used = host_memory_used_percent().unwrap();
        assert!((0.0..=100.0).contains(&used), "{used}");
    }
}
