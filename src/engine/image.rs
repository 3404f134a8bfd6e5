//! Container image references, judged as written: is the image pinned to something immutable?
//!
//! A reference `[registry[:port]/]path[:tag][@algorithm:digest]` is mutable when it has the tag `latest` or no
//! tag at all (which means `latest`). A well-formed digest pins it, whatever the tag says.

/// What a reference is, for the `latest-image` guardrail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageKind {
    /// Pinned by a well-formed digest (`…@sha256:<64 hex>`).
    Digest,
    /// A tag other than `latest`.
    Tagged(String),
    /// The tag `latest`: mutable.
    Latest,
    /// No tag and no digest: the runtime pulls `latest`.
    Untagged,
    /// Not an image reference we can judge (empty, malformed digest, …): a violation, since nothing is proven.
    Invalid(String),
}

impl ImageKind {
    /// True when the reference may change under the rollout's feet.
    pub fn is_violation(&self) -> bool {
        matches!(
            self,
            ImageKind::Latest | ImageKind::Untagged | ImageKind::Invalid(_)
        )
    }

    /// A short reason for messages.
    pub fn describe(&self) -> String {
        match self {
            ImageKind::Digest => "pinned by digest".to_string(),
            ImageKind::Tagged(tag) => format!("tag `{tag}`"),
            ImageKind::Latest => "tag `latest`".to_string(),
            ImageKind::Untagged => "no tag (pulls `latest`)".to_string(),
            ImageKind::Invalid(why) => format!("not a valid image reference: {why}"),
        }
    }
}

/// Classifies one image reference as specified in a pod template.
pub fn classify(reference: &str) -> ImageKind {
    let reference = reference.trim();
    if reference.is_empty() {
        return ImageKind::Invalid("empty".to_string());
    }
    if reference
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
    {
        return ImageKind::Invalid("contains whitespace".to_string());
    }
    let (name, digest) = match reference.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (reference, None),
    };
    if name.is_empty() {
        return ImageKind::Invalid("no repository before `@`".to_string());
    }
    if let Some(digest) = digest {
        return match valid_digest(digest) {
            Ok(()) => ImageKind::Digest,
            Err(why) => ImageKind::Invalid(why),
        };
    }
    // The tag is after the last `:` of the last path component; a `:` before a `/` is a registry port.
    let last_component = name.rsplit('/').next().unwrap_or(name);
    match last_component.split_once(':') {
        None => ImageKind::Untagged,
        Some((_, "")) => ImageKind::Invalid("empty tag".to_string()),
        Some((_, "latest")) => ImageKind::Latest,
        Some((_, tag)) => ImageKind::Tagged(tag.to_string()),
    }
}

fn valid_digest(digest: &str) -> Result<(), String> {
    let (algorithm, hex) = digest
        .split_once(':')
        .ok_or_else(|| format!("digest `{digest}` has no algorithm"))?;
    let expected_len = match algorithm {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        other => return Err(format!("unknown digest algorithm `{other}`")),
    };
    if hex.len() != expected_len
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(format!("digest is not {expected_len} lowercase hex digits"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn tags_other_than_latest_pass() {
        assert_eq!(
            classify("registry.local/shop/web:1.4.2"),
            ImageKind::Tagged("1.4.2".into())
        );
        assert_eq!(
            classify("nginx:1.25-alpine"),
            ImageKind::Tagged("1.25-alpine".into())
        );
        assert_eq!(
            classify("registry.local:5000/team/app:v2"),
            ImageKind::Tagged("v2".into())
        );
        assert!(!classify("docker.io/envoyproxy/envoy:v1.30.1").is_violation());
    }

    #[test]
    fn latest_and_untagged_are_violations() {
        assert_eq!(
            classify("registry.local/media/encoder:latest"),
            ImageKind::Latest
        );
        assert_eq!(classify("nginx"), ImageKind::Untagged);
        assert_eq!(
            classify("registry.local:5000/team/app"),
            ImageKind::Untagged
        );
        assert_eq!(classify("localhost:5000/app"), ImageKind::Untagged);
        assert!(classify("nginx").is_violation());
    }

    #[test]
    fn a_digest_pins_even_with_latest() {
        assert_eq!(
            classify(&format!("registry.local/media/resizer:latest@{SHA}")),
            ImageKind::Digest
        );
        assert_eq!(classify(&format!("nginx@{SHA}")), ImageKind::Digest);
        assert_eq!(
            classify(&format!("registry.local:5000/app@{SHA}")),
            ImageKind::Digest
        );
    }

    #[test]
    fn malformed_references_are_violations() {
        for bad in [
            "",
            "  ",
            "nginx@sha256:abc",
            "nginx@md5:0123",
            "@sha256:00",
            "nginx:",
            "ngi nx:1",
        ] {
            let kind = classify(bad);
            assert!(matches!(kind, ImageKind::Invalid(_)), "{bad:?} → {kind:?}");
            assert!(kind.is_violation());
        }
        let upper = format!("nginx@{}", SHA.to_uppercase().replace("SHA256", "sha256"));
        assert!(classify(&upper).is_violation());
    }
}
