package deepsift.lake;

import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;

import org.apache.spark.sql.AnalysisException;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.SparkSessionExtensions;
import org.apache.spark.sql.SparkSessionExtensionsProvider;
import org.apache.spark.sql.catalyst.expressions.Expression;
import org.apache.spark.sql.catalyst.plans.logical.Command;
import org.apache.spark.sql.catalyst.plans.logical.LogicalPlan;
import org.apache.spark.sql.execution.command.ResetCommand;
import org.apache.spark.sql.execution.command.SetCommand;
import scala.Option;
import scala.Tuple2;
import scala.jdk.javaapi.CollectionConverters;
import scala.runtime.BoxedUnit;

/**
 * Read-only SQL for analysts: a check rule that refuses every plan that is not a query.
 *
 * <p>deepsift loads this extension into every session (spark.sql.extensions); it enforces only where
 * the session's {@code spark.deepsift.sql.readOnly} is {@code true}: the analyst CLI and the JDBC
 * server. Check rules run after analysis and before any command executes, so the rule also covers
 * DataFrame writes, EXECUTE IMMEDIATE and each statement of a SQL script. Allowed: queries (SELECT,
 * WITH, VALUES), SHOW, DESCRIBE, EXPLAIN, USE, and SET / RESET of keys outside
 * {@code spark.deepsift.*}, so an enforcing session cannot switch itself back to read-write. Inside
 * queries, script transforms (TRANSFORM ... USING runs a program) and reflect() / java_method() (they
 * call Java methods) are refused too. A refusal is an AnalysisException with the condition
 * FORBIDDEN_OPERATION that names the statement kind.
 */
public final class ReadOnlySqlExtension implements SparkSessionExtensionsProvider {

    /** The session setting that switches enforcement on. */
    public static final String READ_ONLY_KEY = "spark.deepsift.sql.readOnly";

    private static final String SESSION = "read-only session (" + READ_ONLY_KEY + "=true)";
    private static final String QUERIES_ONLY = "it runs queries only: SELECT, WITH, VALUES, SHOW, DESCRIBE, EXPLAIN, USE and SET";
    private static final String STAYS_ON = "read-only mode cannot be switched off";

    /** Root commands that only read the catalog or the session, by class name (Spark's and Delta's). */
    private static final Pattern READ_ONLY_COMMAND = Pattern.compile(
        "(Show|Describe).*|ExplainCommand|SetCatalogAndNamespace|SetNamespaceCommand|SetCatalogCommand");

    /** Statement kinds named in refusals, matched in order against the refused plan node's class name. */
    private static final List<Kind> KINDS = List.of(
        new Kind("MERGE", "(Delta)?MergeInto.*"),
        new Kind("UPDATE", "(Delta)?Update(Table|Command)"),
        new Kind("DELETE", "(Delta)?Delete(FromTable.*|Command)?"),
        new Kind("TRUNCATE", "(Delta)?Truncate.*"),
        new Kind("ALTER", "Alter.*|(Add|Replace|Drop)Columns|RenameColumn|CommentOn.*|(Set|Unset)(Table|View).*"
            + "|RenameTable.*|(Add|Drop|Rename|Recover)Partitions.*|RepairTable.*"),
        new Kind("DROP", "Drop.*"),
        new Kind("CREATE", "Create.*|ReplaceTable.*"),
        new Kind("INSERT", "AppendData|Overwrite.*|InsertInto.*|SaveIntoDataSource.*|WriteToDataSource.*|WriteDelta.*"),
        new Kind("CACHE", "(Cache|Uncache|ClearCache).*"),
        new Kind("ADD JAR", "Add(Jars|Files|Archives)Command"),
        new Kind("REFRESH", "Refresh.*"),
        new Kind("OPTIMIZE", "Optimize.*"),
        new Kind("VACUUM", "Vacuum.*"),
        new Kind("RESTORE", "Restore.*"),
        new Kind("ANALYZE", "Analyze.*"),
        new Kind("LOAD DATA", "LoadData.*"),
        new Kind("CONVERT TO DELTA", "Convert.*"),
        new Kind("CALL", "Call.*"),
        new Kind("DECLARE VARIABLE", "CreateVariable"),
        new Kind("SET VARIABLE", "SetVariable"),
        new Kind("TRANSFORM", "ScriptTransformation"));

    @Override
    public BoxedUnit apply(SparkSessionExtensions extensions) {
        extensions.injectCheckRule(session -> plan -> {
            Refusal refusal = enforced(session) ? refusal(plan) : null;
            if (refusal != null) {
                throw unchecked(refusal.toException());
            }
            return BoxedUnit.UNIT;
        });
        return BoxedUnit.UNIT;
    }

    private static boolean enforced(SparkSession session) {
        return "true".equalsIgnoreCase(session.sessionState().conf().getConfString(READ_ONLY_KEY, "false").trim());
    }

    /** Why {@code plan} is refused, or null when it is a query, a read-only command or an allowed SET / RESET. */
    static Refusal refusal(LogicalPlan plan) {
        if (plan instanceof SetCommand set) {
            return setRefusal(set);
        }
        if (plan instanceof ResetCommand reset) {
            return resetRefusal(reset);
        }
        if (READ_ONLY_COMMAND.matcher(plan.getClass().getSimpleName()).matches()) {
            return null;
        }
        Refusal[] found = {null};
        plan.foreachWithSubqueries(node -> {
            String name = node.getClass().getSimpleName().replace("$", "");
            if (found[0] == null && (node instanceof Command || name.equals("ScriptTransformation"))) {
                found[0] = new Refusal(kindOf(name), QUERIES_ONLY);
            }
            for (Expression expression : CollectionConverters.asJava(node.expressions())) {
                if (found[0] == null
                        && expression.exists(e -> e.getClass().getSimpleName().equals("CallMethodViaReflection"))) {
                    found[0] = new Refusal("reflect()", "it calls Java methods; " + QUERIES_ONLY);
                }
            }
            return BoxedUnit.UNIT;
        });
        return found[0];
    }

    private static Refusal setRefusal(SetCommand set) {
        Option<Tuple2<String, Option<String>>> kv = set.kv();
        if (kv.isEmpty() || kv.get()._2().isEmpty()) {
            return null; // SET, SET -v and SET key only show settings
        }
        String key = kv.get()._1().trim();
        String value = kv.get()._2().get().trim();
        if (!key.startsWith("spark.deepsift.") || (key.equals(READ_ONLY_KEY) && value.equalsIgnoreCase("true"))) {
            return null;
        }
        return new Refusal("SET " + key + "=" + value, STAYS_ON);
    }

    private static Refusal resetRefusal(ResetCommand reset) {
        Option<String> key = reset.config();
        if (key.isEmpty()) {
            return new Refusal("RESET", STAYS_ON + "; RESET one key instead");
        }
        if (key.get().trim().startsWith("spark.deepsift.")) {
            return new Refusal("RESET " + key.get().trim(), STAYS_ON);
        }
        return null;
    }

    private static String kindOf(String className) {
        for (Kind kind : KINDS) {
            if (kind.pattern().matcher(className).matches()) {
                return kind.name();
            }
        }
        return className;
    }

    /** Throws a checked exception through Scala's Function1, which declares none (Scala has no checked exceptions). */
    @SuppressWarnings("unchecked")
    private static <E extends Throwable> E unchecked(Throwable error) throws E {
        throw (E) error;
    }

    /** A refused statement and why; Spark's message reads "The operation STATEMENT is not allowed on the ...". */
    record Refusal(String statement, String reason) {
        AnalysisException toException() {
            Map<String, String> parameters = Map.of("statement", statement, "objectType", SESSION, "objectName", reason);
            return new AnalysisException(
                "FORBIDDEN_OPERATION", scala.collection.immutable.Map$.MODULE$.from(CollectionConverters.asScala(parameters)));
        }
    }

    private record Kind(String name, Pattern pattern) {
        Kind(String name, String regex) {
            this(name, Pattern.compile(regex));
        }
    }
}
