package dataplatform.delta;

import io.delta.storage.S3SingleDriverLogStore;
import java.io.IOException;
import java.sql.Connection;
import java.sql.Driver;
import java.sql.PreparedStatement;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.Iterator;
import java.util.Properties;
import java.util.regex.Pattern;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.Path;

/**
 * Delta's S3 log store with a cross-process commit lock per table.
 *
 * <p>{@link S3SingleDriverLogStore} makes the put of {@code _delta_log/N.json} exclusive only
 * inside one JVM: it checks that the file does not exist, then writes it, and S3 has no
 * put-if-absent that it uses. Two processes committing to one table (landing appending while
 * OPTIMIZE runs, or the delta-rs exporter) can both find {@code N.json} missing and the second
 * put silently replaces the first commit. This store takes a PostgreSQL transaction-level
 * advisory lock keyed by the table ({@code bucket/path}, no scheme) around that check and put,
 * so the loser of a race finds the file and Delta retries its commit as version N+1 after its
 * usual conflict check. delta-rs writers take the same lock from Python
 * ({@code dataplatform.lakelock}), with the same key and the same SQL hash.
 *
 * <p>Configured with Hadoop keys (Spark: {@code spark.hadoop.<key>}):
 *
 * <ul>
 *   <li>{@code dataplatform.lakelock.jdbc.url}: JDBC URL of the PostgreSQL database (required);
 *   <li>{@code dataplatform.lakelock.jdbc.user}, {@code dataplatform.lakelock.jdbc.password};
 *   <li>{@code dataplatform.lakelock.timeout.ms}: how long to wait for the lock (default 60000).
 * </ul>
 *
 * <p>Without the lock the commit fails (an IOException naming the table): writing unlocked is
 * exactly the lost-commit race this class exists to prevent.
 */
public class PostgresLockedS3LogStore extends S3SingleDriverLogStore {

  public static final String URL_KEY = "dataplatform.lakelock.jdbc.url";
  public static final String USER_KEY = "dataplatform.lakelock.jdbc.user";
  public static final String PASSWORD_KEY = "dataplatform.lakelock.jdbc.password";
  public static final String TIMEOUT_KEY = "dataplatform.lakelock.timeout.ms";
  public static final long DEFAULT_TIMEOUT_MS = 60_000L;

  /** A commit file: {@code _delta_log/<20 digits>.json}. Checkpoints and CRCs need no lock. */
  private static final Pattern COMMIT_FILE = Pattern.compile("\\d+\\.json");

  /** PostgreSQL's SQLSTATE for lock_timeout expiring (lock_not_available). */
  private static final String LOCK_NOT_AVAILABLE = "55P03";

  public PostgresLockedS3LogStore(Configuration initHadoopConf) {
    super(initHadoopConf);
  }

  /**
   * The lock key of the table that holds {@code path}: {@code bucket/path/of/table}.
   *
   * @param commitFile a {@code <table>/_delta_log/N.json} path, any scheme (s3a, s3).
   * @return the bucket and the table's path, without scheme or trailing slash.
   */
  public static String tableKey(Path commitFile) {
    Path table = commitFile.getParent().getParent();
    java.net.URI uri = table.toUri();
    String authority = uri.getAuthority() == null ? "" : uri.getAuthority();
    String key = authority + uri.getPath();
    while (key.endsWith("/")) {
      key = key.substring(0, key.length() - 1);
    }
    return key;
  }

  @Override
  public void write(Path path, Iterator<String> actions, Boolean overwrite, Configuration hadoopConf)
      throws IOException {
    if (overwrite || !COMMIT_FILE.matcher(path.getName()).matches()) {
      super.write(path, actions, overwrite, hadoopConf);
      return;
    }
    String key = tableKey(path);
    Connection connection = connect(hadoopConf, key);
    try {
      lock(connection, key, hadoopConf.getLong(TIMEOUT_KEY, DEFAULT_TIMEOUT_MS));
      super.write(path, actions, overwrite, hadoopConf);
    } finally {
      release(connection);
    }
  }

  private static Connection connect(Configuration conf, String key) throws IOException {
    String url = conf.get(URL_KEY);
    if (url == null || url.isEmpty()) {
      throw new IOException(
          "cannot commit to Delta table " + key + ": " + URL_KEY + " is not set, so the "
              + "table's commit lock cannot be taken (the session builder sets it from the "
              + "POSTGRES_* settings)");
    }
    Properties props = new Properties();
    props.setProperty("user", conf.get(USER_KEY, ""));
    props.setProperty("password", conf.get(PASSWORD_KEY, ""));
    props.setProperty("connectTimeout", "10");
    props.setProperty("ApplicationName", "delta-commit-lock");
    try {
      // The driver is on spark.jars, loaded by the class loader that loaded this class;
      // DriverManager would look only at the system class loader's drivers.
      Driver driver =
          (Driver)
              Class.forName(
                      "org.postgresql.Driver", true, PostgresLockedS3LogStore.class.getClassLoader())
                  .getDeclaredConstructor()
                  .newInstance();
      Connection connection = driver.connect(url, props);
      if (connection == null) {
        throw new IOException("the PostgreSQL JDBC driver does not accept the URL in " + URL_KEY);
      }
      connection.setAutoCommit(false);
      return connection;
    } catch (ReflectiveOperationException e) {
      throw new IOException(
          "cannot commit to Delta table " + key + ": the PostgreSQL JDBC driver is not on the "
              + "class path (it is one of the jars in .jars/spark)", e);
    } catch (SQLException e) {
      throw new IOException(
          "cannot commit to Delta table " + key + ": PostgreSQL, which holds the table's commit "
              + "lock, is unreachable: " + e.getMessage(), e);
    }
  }

  private static void lock(Connection connection, String key, long timeoutMs) throws IOException {
    try {
      try (Statement statement = connection.createStatement()) {
        statement.execute("SET LOCAL lock_timeout = " + Math.max(1L, timeoutMs));
      }
      try (PreparedStatement statement =
          connection.prepareStatement("SELECT pg_advisory_xact_lock(hashtextextended(?, 0))")) {
        statement.setString(1, key);
        statement.execute();
      }
    } catch (SQLException e) {
      if (LOCK_NOT_AVAILABLE.equals(e.getSQLState())) {
        throw new IOException(
            "timed out after " + timeoutMs + " ms waiting for the commit lock of Delta table "
                + key + ": another writer holds it (see pg_locks / pg_stat_activity; raise "
                + TIMEOUT_KEY + " if its commits are that long)", e);
      }
      throw new IOException("cannot take the commit lock of Delta table " + key + ": "
          + e.getMessage(), e);
    }
  }

  /**
   * Ends the transaction, which releases the advisory lock. A failure here must not turn a
   * written commit into a reported failure: a lost connection has released the lock already.
   */
  private static void release(Connection connection) {
    try {
      connection.rollback();
    } catch (SQLException e) {
      // The session is gone, and its locks with it.
    }
    try {
      connection.close();
    } catch (SQLException e) {
      // As above: nothing is held by a closed or broken session.
    }
  }
}
