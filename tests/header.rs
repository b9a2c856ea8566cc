//! The committed header, include/zmq_proxy_stream.h, is exactly what cbindgen generates from
//! src/ (build.rs writes it into OUT_DIR; builds never write into the source tree).

#[test]
fn the_committed_header_is_the_generated_one() {
    let generated_path = env!("ZMQ_PROXY_STREAM_GENERATED_HEADER");
    let generated = std::fs::read_to_string(generated_path).expect("the generated header");
    let committed_path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("include/zmq_proxy_stream.h");
    let committed = std::fs::read_to_string(&committed_path).expect("the committed header");
    if generated != committed {
        let first = generated
            .lines()
            .zip(committed.lines())
            .position(|(g, c)| g != c)
            .unwrap_or_else(|| generated.lines().count().min(committed.lines().count()));
        panic!(
            "include/zmq_proxy_stream.h is not what cbindgen generates from src/ (first \
             difference at line {}: generated {:?}, committed {:?}).\n\
             Run `STREAMQ_WRITE_HEADER=1 cargo build` and commit include/zmq_proxy_stream.h.",
            first + 1,
            generated.lines().nth(first).unwrap_or("<end>"),
            committed.lines().nth(first).unwrap_or("<end>")
        );
    }
}
