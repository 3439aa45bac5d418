//! What each fuzz target does with its input: load it as ferry does, and plan and render what
//! loads. A panic (or an abort) is a crash for AFL; errors are the expected answer to bad input.

use ferry_plan::render;
use ferry_profiles::ProfileSet;

/// The example sites, for the profile target to plan with a mutated profile.
pub const SITES: [&str; 3] = [
    include_str!("../../examples/linux-ha-pair.toml"),
    include_str!("../../examples/ucm-standard.toml"),
    include_str!("../../examples/cms-ha.toml"),
];

fn plan_and_render(site: &ferry_model::Site, profiles: &ProfileSet) {
    if let Ok(plan) = ferry_plan::plan(
        site,
        |n| profiles.get(n).map(|p| &p.profile),
        String::new(),
        &Default::default(),
    ) {
        render_all(&plan);
    }
}

fn render_all(plan: &ferry_model::Plan) {
    let _ = render::text::render_text(plan);
    let _ = render::mop::render_mop(plan);
    let _ = render::svg::render_svg(plan);
    let _ = render::dot::render_dot(plan);
}

/// A site file, loaded against the built-in profiles, planned and rendered.
pub fn site(profiles: &ProfileSet, text: &str) {
    if let Ok(site) = ferry_profiles::load_site("site.toml", text, profiles) {
        plan_and_render(&site, profiles);
    }
}

/// A profile, added to the built-in ones (replacing one of the same name), then the examples
/// that use it planned with it.
pub fn profile(builtin: &ProfileSet, text: &str) {
    let mut set = builtin.clone();
    let Ok(p) = set.add("my.toml", text) else {
        return;
    };
    let name = p.profile.profile.name.clone();
    for s in SITES {
        if let Ok(site) = ferry_profiles::load_site("site.toml", s, &set) {
            if site.clusters.iter().any(|c| c.profile == name) {
                plan_and_render(&site, &set);
            }
        }
    }
}

/// A plan file: read as JSON, and rendered when it reads.
pub fn plan(text: &str) {
    if let Ok(plan) = serde_json::from_str::<ferry_model::Plan>(text) {
        render_all(&plan);
    }
}
