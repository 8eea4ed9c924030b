use super::*;

fn sample_requests() -> Vec<Request<'static>> {
    vec![
        Request::Open {
            path: b"//a/b",
            flags: 0o100002,
        },
        Request::Create {
            path: b"//new",
            flags: 0o101,
            mode: 0o644,
            uid: 1000,
            gid: 100,
        },
        Request::Mknod {
            uid: 1,
            gid: 2,
            path: b"//fifo",
            mode: 0o10644,
            rdev: 0x1234_5678_9abc,
        },
        Request::Mkdir {
            uid: 0,
            gid: 0,
            path: b"//d",
            mode: 0o755,
        },
        Request::Symlink {
            uid: 5,
            gid: 6,
            target: b"../x",
            path: b"//l",
        },
        Request::Link {
            old: b"//a",
            new: b"//b",
        },
        Request::Lstat { path: b"/" },
        Request::Readlink {
            path: b"//l",
            bufsize: 4096,
        },
        Request::Statfs { path: b"/" },
        Request::Chmod {
            path: b"//a",
            mode: 0o600,
        },
        Request::Chown {
            path: b"//a",
            uid: u32::MAX,
            gid: 7,
        },
        Request::Truncate {
            path: b"//a",
            length: -1,
        },
        Request::Utime {
            path: b"//a",
            atime: (1, 2),
            mtime: (3, (1 << 30) - 2),
        },
        Request::Rename {
            old: b"//a",
            new: b"//c",
        },
        Request::Remove { path: b"//c" },
        Request::Lgetxattr {
            size: 0,
            path: b"//a",
            name: b"user.x",
        },
        Request::Llistxattr {
            size: -5,
            path: b"//a",
        },
        Request::Lsetxattr {
            path: b"//a",
            name: b"user.x",
            value: b"v\0v",
            size: 3,
            flags: 1,
        },
        Request::Lremovexattr {
            path: b"//a",
            name: b"user.x",
        },
        Request::Getversion { path: b"//a" },
    ]
}

fn kind_of(req: &Request<'_>) -> RequestType {
    let frame = client::encode(req);
    let header = Header::decode(frame[..HEADER_SIZE].try_into().unwrap());
    RequestType::from_wire(header.kind).unwrap()
}

#[test]
fn every_request_round_trips_through_the_client_encoder() {
    let samples = sample_requests();
    assert_eq!(samples.len(), 20, "one sample per request type");
    for req in &samples {
        let frame = client::encode(req);
        let header = Header::decode(frame[..HEADER_SIZE].try_into().unwrap());
        assert_eq!(header.size as usize, frame.len() - HEADER_SIZE);
        let decoded = decode_request(kind_of(req), &frame[HEADER_SIZE..]).unwrap();
        assert_eq!(decoded.kind(), req.kind());
        assert_eq!(client::encode(&decoded), frame, "{req:?}");
    }
}

#[test]
fn paths_carry_a_nul_where_qemu_sends_a_v9fspath() {
    let lstat = client::encode(&Request::Lstat { path: b"/" });
    assert_eq!(&lstat[HEADER_SIZE..], &[2, 0, b'/', 0]);
    let remove = client::encode(&Request::Remove { path: b"//a" });
    assert_eq!(&remove[HEADER_SIZE..], &[3, 0, b'/', b'/', b'a']);
}

#[test]
fn every_truncation_is_an_error_never_a_panic() {
    for req in sample_requests() {
        let frame = client::encode(&req);
        let payload = &frame[HEADER_SIZE..];
        for cut in 0..payload.len() {
            assert!(decode_request(kind_of(&req), &payload[..cut]).is_err());
        }
    }
}

#[test]
fn a_string_written_in_place_encodes_as_encode_string() {
    for len in [0usize, 1, 5, 65535, 65536] {
        let bytes: Vec<u8> = (0..len).map(|i| i as u8).collect();
        let mut expected = vec![9u8; 3];
        encode_string(&mut expected, &bytes);
        let mut in_place = vec![9u8; 3];
        in_place.extend_from_slice(&[0; STRING_LEN_SIZE]);
        in_place.extend_from_slice(&bytes);
        encode_string_length(&mut in_place, 3);
        assert_eq!(in_place, expected, "length {len}");
    }
}

#[test]
fn string_longer_than_payload_is_reported() {
    let mut payload = Vec::new();
    payload.extend_from_slice(&100u16.to_ne_bytes());
    payload.extend_from_slice(b"short");
    assert_eq!(
        decode_request(RequestType::Lstat, &payload),
        Err(DecodeError::StringOverrun {
            field: "path",
            len: 100
        })
    );
}

#[test]
fn unknown_types_are_not_requests() {
    for raw in [0, 1, 22, 0xffff_ffff] {
        assert_eq!(RequestType::from_wire(raw), None);
    }
}

#[test]
fn stat_and_statfs_have_the_wire_sizes() {
    let mut out = Vec::new();
    WireStat::default().encode(&mut out);
    assert_eq!(out.len(), STAT_SIZE);
    out.clear();
    WireStatFs::default().encode(&mut out);
    assert_eq!(out.len(), STATFS_SIZE);
    let st = WireStat {
        dev: 1,
        ino: 2,
        nlink: 3,
        mode: 4,
        uid: 5,
        gid: 6,
        rdev: 7,
        size: 8,
        blksize: 9,
        blocks: 10,
        atime: (11, 12),
        mtime: (13, 14),
        ctime: (15, 16),
    };
    out.clear();
    st.encode(&mut out);
    assert_eq!(WireStat::decode(&out), Some(st));
}

#[test]
fn status_and_oversized_response() {
    let mut out = Vec::new();
    encode_status(&mut out, -2);
    assert_eq!(Header::decode(out[..8].try_into().unwrap()).kind, T_ERROR);
    assert_eq!(i32::from_ne_bytes(out[8..12].try_into().unwrap()), -2);

    let mut out = vec![0u8; HEADER_SIZE + MAX_PAYLOAD + 1];
    finish_response(&mut out, 105);
    assert_eq!(out.len(), 12);
    assert_eq!(i32::from_ne_bytes(out[8..12].try_into().unwrap()), -105);
}
