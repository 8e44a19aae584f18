pub fn compiled_variants() -> Vec<Vec<(String, String)>> {
    vec![Vec::new()]
}
