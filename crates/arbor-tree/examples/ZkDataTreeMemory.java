// Measures ZooKeeper's own DataTree with the workload of arbor-tree's `million` example:
// N znodes of 100 bytes, 1000 per parent. Prints live heap per znode after a full GC, and
// the JVM's RSS.
//   javac -cp /usr/share/java/zookeeper.jar ZkDataTreeMemory.java
//   java -Xmx8g -cp /usr/share/java/zookeeper.jar:/usr/share/java/zookeeper-jute.jar:/usr/share/java/slf4j-api.jar:. ZkDataTreeMemory 1000000
import java.nio.file.Files;
import java.nio.file.Paths;
import org.apache.zookeeper.ZooDefs;
import org.apache.zookeeper.server.DataTree;

public class ZkDataTreeMemory {
    static long used() throws Exception {
        Runtime rt = Runtime.getRuntime();
        for (int i = 0; i < 3; i++) { System.gc(); Thread.sleep(200); }
        return rt.totalMemory() - rt.freeMemory();
    }

    static long rss() throws Exception {
        for (String line : Files.readAllLines(Paths.get("/proc/self/status"))) {
            if (line.startsWith("VmRSS:")) {
                return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
            }
        }
        return 0;
    }

    public static void main(String[] args) throws Exception {
        int n = args.length > 0 ? Integer.parseInt(args[0]) : 1000000;
        long before = used();
        long rssBefore = rss();
        DataTree tree = new DataTree();
        byte[] data = new byte[100];
        long zxid = 1;
        int created = 0;
        for (int p = 0; created < n; p++) {
            String parent = String.format("/p%06d", p);
            tree.createNode(parent, new byte[0], ZooDefs.Ids.OPEN_ACL_UNSAFE, 0, -1, zxid++, 0);
            for (int c = 0; c < 1000 && created < n; c++, created++) {
                tree.createNode(parent + String.format("/n%010d", c), data.clone(),
                    ZooDefs.Ids.OPEN_ACL_UNSAFE, 0, -1, zxid++, 0);
            }
        }
        long after = used();
        long rssAfter = rss();
        int nodes = tree.getNodeCount();
        System.out.printf("znodes %d: live heap delta %.1f MiB = %d bytes/znode; rss delta %.1f MiB = %d bytes/znode%n",
            nodes, (after - before) / 1048576.0, (after - before) / nodes,
            (rssAfter - rssBefore) / 1048576.0, (rssAfter - rssBefore) / nodes);
    }
}
