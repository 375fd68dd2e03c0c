//! A chunk whose header claims far more audio than it holds (a FLAC whose STREAMINFO says 3.9
//! hours, holding one second) is decoded to its one second without reserving memory for the
//! claim: the output grows with the decoded data.

use std::process::Command;

use lahstats_worker::audio::{decode_file, AudioOptions, SAMPLE_RATE};

/// One second of tone as FLAC, its STREAMINFO total-samples field rewritten to `claimed_seconds`.
fn flac_claiming(dir: &std::path::Path, claimed_seconds: f64) -> std::path::PathBuf {
    let honest = dir.join("honest.flac");
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg("sine=frequency=440:sample_rate=16000:duration=1")
        .args(["-ac", "1"])
        .arg(&honest)
        .output()
        .expect("ffmpeg");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut bytes = std::fs::read(&honest).unwrap();
    assert_eq!(&bytes[..4], b"fLaC");
    // STREAMINFO follows the 4-byte marker and a 4-byte block header; its bytes 10..18 hold
    // 20 bits of sample rate, 3 of channels, 5 of bits per sample and 36 of total samples.
    let field = 8 + 10..8 + 18;
    let mut packed = u64::from_be_bytes(bytes[field.clone()].try_into().unwrap());
    let total = (claimed_seconds * 16_000.0) as u64;
    packed = (packed & !((1u64 << 36) - 1)) | total;
    bytes[field].copy_from_slice(&packed.to_be_bytes());
    let liar = dir.join("liar.flac");
    std::fs::write(&liar, bytes).unwrap();
    liar
}

#[test]
fn a_header_claiming_hours_reserves_nothing_for_them() {
    let dir = tempfile::tempdir().unwrap();
    let liar = flac_claiming(dir.path(), 3.9 * 3600.0);
    let probe = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(&liar)
        .output()
        .unwrap();
    let claimed: f64 = String::from_utf8_lossy(&probe.stdout)
        .trim()
        .parse()
        .unwrap();
    assert!(claimed > 14_000.0, "the header claims {claimed} s");

    let samples = decode_file(liar.to_str().unwrap(), &AudioOptions::default()).expect("decode");
    let seconds = samples.len() as f64 / f64::from(SAMPLE_RATE);
    assert!((0.9..1.1).contains(&seconds), "decoded {seconds} s");
    let reserved_seconds = samples.capacity() as f64 / f64::from(SAMPLE_RATE);
    println!("claimed {claimed:.0} s, decoded {seconds:.2} s, reserved {reserved_seconds:.2} s");
    assert!(
        reserved_seconds < 10.0,
        "{reserved_seconds:.0} s of samples reserved for 1 s of audio"
    );
}
