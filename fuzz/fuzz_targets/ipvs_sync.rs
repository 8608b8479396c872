//! The sync-message decoder over any bytes: it either refuses them or yields entries
//! that lie inside the message, and a message it accepts, re-encoded from its entries,
//! decodes to the same entries (options other than sequence data are not re-encoded).
#![no_main]

use libfuzzer_sys::fuzz_target;
use masq_wire::ipvs_sync::{MessageWriter, SyncConn, SyncMessage, HEADER_LEN};

fuzz_target!(|data: &[u8]| {
    let Ok(msg) = SyncMessage::new_checked(data) else {
        return;
    };
    let conns: Vec<SyncConn> = msg.entries().map(|e| e.repr()).collect();
    assert_eq!(conns.len(), msg.entry_count());
    for e in msg.entries() {
        let _ = (e.pe_data(), e.pe_name(), e.has_unknown_mandatory_option());
    }
    let mut buf = vec![0u8; data.len().max(HEADER_LEN + 72)];
    let mut w = MessageWriter::new(&mut buf, msg.syncid());
    for c in &conns {
        w.push(c).expect("a re-encoded entry is never longer than the one read");
    }
    let len = w.finish();
    let again = SyncMessage::new_checked(&buf[..len]).expect("own message decodes");
    let back: Vec<SyncConn> = again.entries().map(|e| e.repr()).collect();
    assert_eq!(back, conns);
});
