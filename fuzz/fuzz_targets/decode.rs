//! Frame decoding: any bytes as (type, payload). Decoding must never panic,
//! and whatever decodes must re-encode (as QEMU's client would) to a frame
//! that decodes and re-encodes to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use virtfs_proxy_helper::protocol::{
    HEADER_SIZE, Header, MAX_PAYLOAD, RequestType, client, decode_request,
};

fuzz_target!(|data: &[u8]| {
    if data.len() < HEADER_SIZE {
        return;
    }
    let header = Header::decode(data[..HEADER_SIZE].try_into().unwrap());
    let payload = &data[HEADER_SIZE..];
    let payload = &payload[..payload.len().min(header.size as usize).min(MAX_PAYLOAD)];
    let Some(kind) = RequestType::from_wire(header.kind) else {
        return;
    };
    if let Ok(req) = decode_request(kind, payload) {
        // Encoding adds QEMU's path terminators; after that it is stable.
        let frame = client::encode(&req);
        let again = decode_request(kind, &frame[HEADER_SIZE..]).expect("re-encoded frame decodes");
        assert_eq!(again.kind(), kind);
        assert_eq!(client::encode(&again), frame);
    }
});
