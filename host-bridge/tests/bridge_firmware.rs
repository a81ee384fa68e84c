//! The real firmware on the bridge, leased its address by the bridge's DHCP
//! server (`--dhcp`, dnsmasq inside the namespace): the firmware's default
//! network path, end to end, with the DHCP exchange visible in the pcap.

mod common;
use common::skip;
mod server_support;

use std::process::Command;
use std::time::Duration;

use host_bridge::netns;

#[test]
fn firmware_leases_its_address_by_dhcp_over_the_bridge_and_gets_echoes() {
    if !netns::is_root() {
        skip::skip("the bridge needs root (network namespaces and taps)");
        return;
    }
    if !Command::new("dnsmasq")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        skip::skip("no dnsmasq (apt-get install dnsmasq-base)");
        return;
    }
    let image = common::firmware_image();
    let pcap = std::env::temp_dir().join(format!("bridge-dhcp-{}.pcap", std::process::id()));
    let mut cmd = Command::new(server_support::BIN);
    cmd.args(["run", "--dhcp", "--timeout", "60", "--image"])
        .arg(image)
        .arg("--pcap")
        .arg(&pcap)
        .args(["--", "--proto", "rfc6455", "--count", "3"]);
    let out = server_support::output_within(cmd, Duration::from_secs(120));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        !stdout.contains("--ip"),
        "no static address was passed: {stdout}"
    );
    assert!(
        stderr.contains("new connection from 192.168.76.2:"),
        "{stderr}"
    );
    if let Ok(t) = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(&pcap)
        .args(["-Y", "dhcp"])
        .output()
    {
        if t.status.success() {
            let text = String::from_utf8_lossy(&t.stdout);
            assert!(
                text.contains("DHCP Discover") && text.contains("DHCP ACK"),
                "{text}"
            );
        }
    }
    let _ = std::fs::remove_file(&pcap);
}
