//! Pass: cycles. Orders the graph topologically and reports every cycle.

use super::declare::Declared;
use crate::error::ConfigError;

/// Order the components topologically (Kahn); what remains is on or behind a
/// cycle, and each distinct cycle is reported once, producer first. Produces
/// the topological order (indices into `declared`), without the nodes on or
/// behind a cycle.
pub(super) fn check_cycles(
    declared: &[Declared],
    edges: &[Vec<usize>],
    errors: &mut Vec<ConfigError>,
) -> Vec<usize> {
    let order = topo_order(edges);
    if order.len() < declared.len() {
        for cycle in find_cycles(edges, &order) {
            let names: Vec<String> = cycle
                .iter()
                .map(|&i| format!("`{}`", declared[i].id))
                .collect();
            let first = &declared[cycle[0]];
            errors.push(
                ConfigError::new(
                    format!("{}.{}", first.role.table(), first.id),
                    format!("cycle: {} -> `{}`", names.join(" -> "), first.id),
                )
                .hint("a pipeline is a directed acyclic graph; remove one of these inputs"),
            );
        }
    }
    order
}

fn topo_order(edges: &[Vec<usize>]) -> Vec<usize> {
    let n = edges.len();
    let mut indegree: Vec<usize> = edges.iter().map(|e| e.len()).collect();
    let mut consumers: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, e) in edges.iter().enumerate() {
        for &j in e {
            consumers[j].push(i);
        }
    }
    let mut ready: Vec<usize> = (0..n).filter(|&i| indegree[i] == 0).collect();
    ready.reverse();
    let mut order = Vec::new();
    while let Some(i) = ready.pop() {
        order.push(i);
        for &c in &consumers[i] {
            indegree[c] -= 1;
            if indegree[c] == 0 {
                ready.push(c);
            }
        }
    }
    order
}

/// The distinct cycles among the nodes not in `order`.
fn find_cycles(edges: &[Vec<usize>], order: &[usize]) -> Vec<Vec<usize>> {
    let mut done = vec![false; edges.len()];
    for &i in order {
        done[i] = true;
    }
    let mut cycles = Vec::new();
    for start in 0..edges.len() {
        if done[start] {
            continue;
        }
        // Follow unresolved inputs until a node repeats.
        let mut path = vec![start];
        let mut cur = start;
        while let Some(&next) = edges[cur].iter().find(|&&j| !done[j]) {
            if let Some(pos) = path.iter().position(|&p| p == next) {
                let mut cycle: Vec<usize> = path[pos..].to_vec();
                // Report in data-flow order (producer first).
                cycle.reverse();
                let min = cycle
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, v)| **v)
                    .map(|(i, _)| i)
                    .unwrap_or(0);
                cycle.rotate_left(min);
                for &c in &cycle {
                    done[c] = true;
                }
                cycles.push(cycle);
                break;
            }
            path.push(next);
            cur = next;
        }
        for &p in &path {
            done[p] = true;
        }
    }
    cycles
}
