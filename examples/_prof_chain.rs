use std::hint::black_box;
use twistor::Deferred;
fn main() {
    let mut s = 0;
    for _ in 0..20000 {
        let d = Deferred::<u64>::new();
        let mut tail = d.clone();
        for _ in 0..1000 { tail = tail.add_callback(|x| x + 1); }
        d.callback(black_box(0)).unwrap();
        s += twistor::testing::success_result_of(&tail);
    }
    println!("{s}");
}
