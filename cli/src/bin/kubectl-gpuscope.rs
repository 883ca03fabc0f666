//! `kubectl-gpuscope`: the same CLI as a kubectl plugin (`kubectl gpuscope ...`).

fn main() -> anyhow::Result<()> {
    gpuscope_cli::kubectl_main_entry()
}
