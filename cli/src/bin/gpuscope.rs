//! `gpuscope`: see the `gpuscope_cli` library.

fn main() -> anyhow::Result<()> {
    gpuscope_cli::main_entry()
}
