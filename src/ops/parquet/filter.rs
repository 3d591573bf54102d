//! The `where` of the `parquet` source: a SQL boolean expression over columns,
//! parsed with sqlparser and evaluated per batch with Arrow kernels, with SQL's
//! three-valued logic (a comparison with null is unknown; unknown rows are dropped).
//!
//! Supported: `=`, `!=`/`<>`, `<`, `<=`, `>`, `>=`, `AND`, `OR`, `NOT`, parentheses,
//! `[NOT] IN (...)`, `[NOT] BETWEEN a AND b`, `[NOT] LIKE` / `ILIKE`, `IS [NOT] NULL`,
//! with string, number and boolean literals (`label IN ('angry', 'sad') AND
//! corpus = 'ravdess' AND duration_s > 2.5`).

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, Datum, Float64Array, Int64Array, Scalar, StringArray,
};
use arrow::compute::kernels::{boolean, cmp, comparison};
use arrow::datatypes::{DataType, Schema};
use arrow::record_batch::RecordBatch;
use sqlparser::ast::{BinaryOperator, Expr, UnaryOperator, Value};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;

#[derive(Debug, Clone, PartialEq)]
enum Lit {
    Str(String),
    Num(String),
    Bool(bool),
    Null,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
}

#[derive(Debug, Clone)]
enum Operand {
    Col(String),
    Lit(Lit),
}

#[derive(Debug, Clone)]
enum Pred {
    And(Box<Pred>, Box<Pred>),
    Or(Box<Pred>, Box<Pred>),
    Not(Box<Pred>),
    Cmp(Operand, Op, Operand),
    In(String, Vec<Lit>, bool),
    Like(String, String, bool, bool),
    IsNull(String, bool),
}

/// A parsed `where` expression.
#[derive(Debug, Clone)]
pub struct Filter {
    pred: Pred,
    text: String,
}

fn unsupported(e: &Expr) -> String {
    format!(
        "`{e}` is not supported in `where` (use comparisons, IN, BETWEEN, LIKE, IS NULL, AND, OR, NOT)"
    )
}

fn column(e: &Expr) -> Option<String> {
    match e {
        Expr::Identifier(i) => Some(i.value.clone()),
        Expr::CompoundIdentifier(v) => v.last().map(|i| i.value.clone()),
        Expr::Nested(inner) => column(inner),
        _ => None,
    }
}

fn literal(e: &Expr) -> Option<Lit> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => {
                Some(Lit::Str(s.clone()))
            }
            Value::Number(n, _) => Some(Lit::Num(n.to_string())),
            Value::Boolean(b) => Some(Lit::Bool(*b)),
            Value::Null => Some(Lit::Null),
            _ => None,
        },
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => match literal(expr)? {
            Lit::Num(n) => Some(Lit::Num(format!("-{n}"))),
            _ => None,
        },
        Expr::Nested(inner) => literal(inner),
        _ => None,
    }
}

fn operand(e: &Expr) -> Result<Operand, String> {
    if let Some(c) = column(e) {
        return Ok(Operand::Col(c));
    }
    literal(e).map(Operand::Lit).ok_or_else(|| unsupported(e))
}

fn convert(e: &Expr) -> Result<Pred, String> {
    Ok(match e {
        Expr::Nested(inner) => convert(inner)?,
        Expr::BinaryOp { left, op, right } => {
            let cmp_op = match op {
                BinaryOperator::And => {
                    return Ok(Pred::And(
                        Box::new(convert(left)?),
                        Box::new(convert(right)?),
                    ));
                }
                BinaryOperator::Or => {
                    return Ok(Pred::Or(
                        Box::new(convert(left)?),
                        Box::new(convert(right)?),
                    ));
                }
                BinaryOperator::Eq => Op::Eq,
                BinaryOperator::NotEq => Op::NotEq,
                BinaryOperator::Lt => Op::Lt,
                BinaryOperator::LtEq => Op::LtEq,
                BinaryOperator::Gt => Op::Gt,
                BinaryOperator::GtEq => Op::GtEq,
                _ => return Err(unsupported(e)),
            };
            let (l, r) = (operand(left)?, operand(right)?);
            if matches!((&l, &r), (Operand::Lit(_), Operand::Lit(_))) {
                return Err(format!("`{e}` compares two literals; name a column"));
            }
            Pred::Cmp(l, cmp_op, r)
        }
        Expr::UnaryOp {
            op: UnaryOperator::Not,
            expr,
        } => Pred::Not(Box::new(convert(expr)?)),
        Expr::InList {
            expr,
            list,
            negated,
        } => {
            let c = column(expr).ok_or_else(|| unsupported(e))?;
            let lits = list
                .iter()
                .map(|x| literal(x).ok_or_else(|| unsupported(x)))
                .collect::<Result<Vec<_>, _>>()?;
            Pred::In(c, lits, *negated)
        }
        Expr::Between {
            expr,
            negated,
            low,
            high,
        } => {
            let c = column(expr).ok_or_else(|| unsupported(e))?;
            let lo = literal(low).ok_or_else(|| unsupported(low))?;
            let hi = literal(high).ok_or_else(|| unsupported(high))?;
            let p = Pred::And(
                Box::new(Pred::Cmp(
                    Operand::Col(c.clone()),
                    Op::GtEq,
                    Operand::Lit(lo),
                )),
                Box::new(Pred::Cmp(Operand::Col(c), Op::LtEq, Operand::Lit(hi))),
            );
            if *negated { Pred::Not(Box::new(p)) } else { p }
        }
        Expr::Like {
            negated,
            any: false,
            expr,
            pattern,
            escape_char: None,
        }
        | Expr::ILike {
            negated,
            any: false,
            expr,
            pattern,
            escape_char: None,
        } => {
            let c = column(expr).ok_or_else(|| unsupported(e))?;
            let Some(Lit::Str(p)) = literal(pattern) else {
                return Err(format!("the pattern of `{e}` must be a string"));
            };
            Pred::Like(c, p, *negated, matches!(e, Expr::ILike { .. }))
        }
        Expr::IsNull(x) => Pred::IsNull(column(x).ok_or_else(|| unsupported(e))?, false),
        Expr::IsNotNull(x) => Pred::IsNull(column(x).ok_or_else(|| unsupported(e))?, true),
        _ => return Err(unsupported(e)),
    })
}

fn collect_columns(p: &Pred, out: &mut BTreeSet<String>) {
    match p {
        Pred::And(a, b) | Pred::Or(a, b) => {
            collect_columns(a, out);
            collect_columns(b, out);
        }
        Pred::Not(a) => collect_columns(a, out),
        Pred::Cmp(l, _, r) => {
            for o in [l, r] {
                if let Operand::Col(c) = o {
                    out.insert(c.clone());
                }
            }
        }
        Pred::In(c, _, _) | Pred::Like(c, _, _, _) | Pred::IsNull(c, _) => {
            out.insert(c.clone());
        }
    }
}

/// A one-element array holding `lit` as type `to`.
fn scalar(lit: &Lit, to: &DataType) -> Result<Scalar<ArrayRef>, String> {
    let raw: ArrayRef = match lit {
        Lit::Str(s) => Arc::new(StringArray::from(vec![s.as_str()])),
        Lit::Num(n) => match n.parse::<i64>() {
            Ok(i) => Arc::new(Int64Array::from(vec![i])),
            Err(_) => Arc::new(Float64Array::from(vec![
                n.parse::<f64>()
                    .map_err(|_| format!("`{n}` is not a number"))?,
            ])),
        },
        Lit::Bool(b) => Arc::new(BooleanArray::from(vec![*b])),
        Lit::Null => arrow::array::new_null_array(to, 1),
    };
    let cast = arrow::compute::cast(&raw, to).map_err(|e| e.to_string())?;
    if cast.null_count() > raw.null_count() {
        return Err(format!("{lit:?} cannot be compared with a {to} column"));
    }
    Ok(Scalar::new(cast))
}

impl Filter {
    /// Parse a `where` expression.
    pub fn parse(text: &str) -> Result<Filter, String> {
        let dialect = GenericDialect {};
        let expr = Parser::new(&dialect)
            .try_with_sql(text)
            .and_then(|mut p| p.parse_expr())
            .map_err(|e| format!("cannot parse `{text}`: {e}"))?;
        Ok(Filter {
            pred: convert(&expr)?,
            text: text.to_string(),
        })
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// Columns the expression reads.
    pub fn columns(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        collect_columns(&self.pred, &mut out);
        out
    }

    /// Check the columns exist and literals fit their types (by evaluating on an
    /// empty batch of `schema`).
    pub fn check(&self, schema: &Schema) -> Result<(), String> {
        let missing: Vec<String> = self
            .columns()
            .into_iter()
            .filter(|c| schema.field_with_name(c).is_err())
            .collect();
        if !missing.is_empty() {
            let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            return Err(format!(
                "`where` names unknown column{} {} (columns: {})",
                if missing.len() > 1 { "s" } else { "" },
                missing
                    .iter()
                    .map(|c| format!("`{c}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                names.join(", ")
            ));
        }
        let empty = RecordBatch::new_empty(Arc::new(schema.clone()));
        self.evaluate(&empty).map(|_| ())
    }

    /// The rows of `batch` the expression selects (null = not selected).
    pub fn evaluate(&self, batch: &RecordBatch) -> Result<BooleanArray, String> {
        eval(&self.pred, batch)
    }
}

fn col<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef, String> {
    batch
        .column_by_name(name)
        .ok_or_else(|| format!("no column `{name}`"))
}

fn compare(l: &dyn Datum, op: Op, r: &dyn Datum) -> Result<BooleanArray, String> {
    match op {
        Op::Eq => cmp::eq(l, r),
        Op::NotEq => cmp::neq(l, r),
        Op::Lt => cmp::lt(l, r),
        Op::LtEq => cmp::lt_eq(l, r),
        Op::Gt => cmp::gt(l, r),
        Op::GtEq => cmp::gt_eq(l, r),
    }
    .map_err(|e| e.to_string())
}

fn eval(p: &Pred, batch: &RecordBatch) -> Result<BooleanArray, String> {
    let err = |e: arrow::error::ArrowError| e.to_string();
    Ok(match p {
        Pred::And(a, b) => boolean::and_kleene(&eval(a, batch)?, &eval(b, batch)?).map_err(err)?,
        Pred::Or(a, b) => boolean::or_kleene(&eval(a, batch)?, &eval(b, batch)?).map_err(err)?,
        Pred::Not(a) => boolean::not(&eval(a, batch)?).map_err(err)?,
        Pred::Cmp(l, op, r) => match (l, r) {
            (Operand::Col(a), Operand::Col(b)) => {
                let (x, y) = (col(batch, a)?, col(batch, b)?);
                let y = if x.data_type() != y.data_type() {
                    arrow::compute::cast(y, x.data_type()).map_err(err)?
                } else {
                    y.clone()
                };
                compare(x, *op, &y)?
            }
            (Operand::Col(a), Operand::Lit(v)) => {
                let x = col(batch, a)?;
                compare(x, *op, &scalar(v, x.data_type())?)?
            }
            (Operand::Lit(v), Operand::Col(a)) => {
                let x = col(batch, a)?;
                compare(&scalar(v, x.data_type())?, *op, x)?
            }
            (Operand::Lit(_), Operand::Lit(_)) => return Err("two literals".into()),
        },
        Pred::In(c, list, negated) => {
            let x = col(batch, c)?;
            let mut acc = BooleanArray::from(vec![false; batch.num_rows()]);
            for v in list {
                let m = cmp::eq(x, &scalar(v, x.data_type())?).map_err(err)?;
                acc = boolean::or_kleene(&acc, &m).map_err(err)?;
            }
            if *negated {
                boolean::not(&acc).map_err(err)?
            } else {
                acc
            }
        }
        Pred::Like(c, pattern, negated, ci) => {
            let x = col(batch, c)?;
            let x = if x.data_type() != &DataType::Utf8 {
                arrow::compute::cast(x, &DataType::Utf8).map_err(err)?
            } else {
                x.clone()
            };
            let pat = Scalar::new(StringArray::from(vec![pattern.as_str()]));
            match (ci, negated) {
                (false, false) => comparison::like(&x, &pat),
                (false, true) => comparison::nlike(&x, &pat),
                (true, false) => comparison::ilike(&x, &pat),
                (true, true) => comparison::nilike(&x, &pat),
            }
            .map_err(err)?
        }
        Pred::IsNull(c, negated) => {
            let x = col(batch, c)?;
            if *negated {
                arrow::compute::is_not_null(x).map_err(err)?
            } else {
                arrow::compute::is_null(x).map_err(err)?
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::Field;

    fn batch() -> RecordBatch {
        RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("label", DataType::Utf8, true),
                Field::new("corpus", DataType::Utf8, false),
                Field::new("segment", DataType::UInt32, false),
                Field::new("d", DataType::Float64, false),
            ])),
            vec![
                Arc::new(StringArray::from(vec![
                    Some("angry"),
                    Some("sad"),
                    None,
                    Some("happy"),
                ])),
                Arc::new(StringArray::from(vec![
                    "ravdess", "emodb", "ravdess", "ravdess",
                ])),
                Arc::new(arrow::array::UInt32Array::from(vec![0, 1, 2, 3])),
                Arc::new(Float64Array::from(vec![1.0, 2.5, 3.0, 4.0])),
            ],
        )
        .unwrap()
    }

    fn sel(text: &str) -> Vec<bool> {
        let f = Filter::parse(text).unwrap();
        let b = batch();
        f.check(&b.schema()).unwrap();
        let m = f.evaluate(&b).unwrap();
        (0..m.len()).map(|i| m.is_valid(i) && m.value(i)).collect()
    }

    #[test]
    fn sql_predicates_with_three_valued_logic() {
        assert_eq!(
            sel("label IN ('angry', 'sad') AND corpus = 'ravdess'"),
            [true, false, false, false]
        );
        assert_eq!(sel("label NOT IN ('angry')"), [false, true, false, true]);
        assert_eq!(sel("NOT (label = 'angry')"), [false, true, false, true]);
        assert_eq!(
            sel("label IS NULL OR segment >= 3"),
            [false, false, true, true]
        );
        assert_eq!(sel("d BETWEEN 2 AND 3.5"), [false, true, true, false]);
        assert_eq!(
            sel("label LIKE 'ha%' OR label ILIKE 'SAD'"),
            [false, true, false, true]
        );
        assert_eq!(sel("2 < segment"), [false, false, false, true]);
        assert_eq!(sel("segment <> 1 AND d > -1"), [true, false, true, true]);
    }

    #[test]
    fn errors_are_clear() {
        let b = batch();
        let e = Filter::parse("nope = 1")
            .unwrap()
            .check(&b.schema())
            .unwrap_err();
        assert!(
            e.contains("unknown column `nope`") && e.contains("label"),
            "{e}"
        );
        assert!(
            Filter::parse("label = ")
                .unwrap_err()
                .contains("cannot parse")
        );
        assert!(
            Filter::parse("upper(label) = 'A'")
                .unwrap_err()
                .contains("not supported")
        );
        let e = Filter::parse("segment = 'x'")
            .unwrap()
            .check(&b.schema())
            .unwrap_err();
        assert!(!e.is_empty());
    }
}
