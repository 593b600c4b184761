//! Embeds the migrations: every `NNNN_description.sql` in `migrations/sqlite` and
//! `migrations/postgres`, in order, so a new file is picked up without listing it by hand.

use std::fmt::Write;
use std::path::Path;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut out = String::new();
    for backend in ["sqlite", "postgres"] {
        let dir = root.join(backend);
        println!("cargo:rerun-if-changed={}", dir.display());
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("a directory entry").path())
            .filter(|p| p.extension().is_some_and(|x| x == "sql"))
            .collect();
        files.sort();
        writeln!(
            out,
            "pub(crate) const {}: &[(i64, &str, &str)] = &[",
            backend.to_uppercase()
        )
        .unwrap();
        for (i, path) in files.iter().enumerate() {
            let name = path.file_stem().unwrap().to_string_lossy();
            let (number, description) = name
                .split_once('_')
                .unwrap_or_else(|| panic!("{}: name it NNNN_description.sql", path.display()));
            let version: i64 = number.parse().unwrap_or_else(|_| {
                panic!("{}: the name must start with a number", path.display())
            });
            assert_eq!(
                version,
                i as i64 + 1,
                "{}: migrations are numbered 1, 2, 3… without gaps",
                path.display()
            );
            writeln!(
                out,
                "    ({version}, {:?}, include_str!({:?})),",
                description.replace('_', " "),
                path.canonicalize().unwrap().display().to_string()
            )
            .unwrap();
        }
        out.push_str("];\n");
    }
    let dest = Path::new(&std::env::var("OUT_DIR").unwrap()).join("migrations.rs");
    std::fs::write(dest, out).unwrap();
}
