fn main() {
    println!("xiaotong");
}
