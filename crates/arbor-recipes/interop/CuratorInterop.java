// Curator side of the arbor-recipes interop test (crates/arbor-recipes/tests/interop.rs).
//
// Contends, with Apache Curator's own recipes, for the same lock / read-write lock / leader
// latch as Rust processes using arbor-recipes. Inside each critical section it creates an
// ephemeral "occupancy" node that must not exist (exclusive sections) and checks the other
// side's occupancy nodes, so an overlap between a Java and a Rust holder is seen by whichever
// of the two enters second. Prints one line per step and "VIOLATION ..." on an overlap; exits
// 0 when every round ran without one, 1 otherwise, 2 on a usage or connection error.
//
// Each section also appends "java" to a sequential turn log (LOG_DIR), from which the test
// checks that Java and Rust holders really took turns.
//
// Usage: java CuratorInterop MODE CONNECT RECIPE_PATH MARKER_DIR LOG_DIR ROUNDS THREADS
//   MODE: mutex | rwlock | latch | produce
//
// "produce" checks data layouts rather than exclusion: it puts ROUNDS items "java-<i>" and
// one two-item putMulti ("multi-a", "multi-b") into a DistributedQueue at RECIPE_PATH/queue,
// ROUNDS items "p<i>" with priority ROUNDS - i into a DistributedPriorityQueue at
// RECIPE_PATH/priority, and adds 1 ROUNDS times to a SharedCount at RECIPE_PATH/count with
// compare-and-set, for Rust to read back.

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.leader.LeaderLatch;
import org.apache.curator.framework.recipes.queue.DistributedPriorityQueue;
import org.apache.curator.framework.recipes.queue.DistributedQueue;
import org.apache.curator.framework.recipes.queue.MultiItem;
import org.apache.curator.framework.recipes.queue.QueueBuilder;
import org.apache.curator.framework.recipes.queue.QueueSerializer;
import org.apache.curator.framework.recipes.shared.SharedCount;
import org.apache.curator.framework.recipes.shared.VersionedValue;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.framework.recipes.locks.InterProcessReadWriteLock;
import org.apache.curator.retry.ExponentialBackoffRetry;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;

public final class CuratorInterop {
    private static final int WAIT_SECONDS = 120;
    private static final AtomicInteger violations = new AtomicInteger();
    private static final AtomicInteger failures = new AtomicInteger();
    private static String logDir;

    public static void main(String[] args) throws Exception {
        if (args.length != 7) {
            System.err.println("usage: CuratorInterop MODE CONNECT RECIPE_PATH MARKER_DIR LOG_DIR ROUNDS THREADS");
            System.exit(2);
        }
        final String mode = args[0];
        final String connect = args[1];
        final String recipePath = args[2];
        final String markerDir = args[3];
        logDir = args[4];
        final int rounds = Integer.parseInt(args[5]);
        final int threads = Integer.parseInt(args[6]);

        CuratorFramework client = CuratorFrameworkFactory.newClient(
                connect, 20000, 15000, new ExponentialBackoffRetry(100, 10));
        client.start();
        if (!client.blockUntilConnected(60, TimeUnit.SECONDS)) {
            System.err.println("cannot connect to " + connect);
            System.exit(2);
        }
        System.out.println("CONNECTED");
        System.out.flush();

        List<Thread> workers = new ArrayList<>();
        for (int t = 0; t < threads; t++) {
            final String who = "java-" + t;
            Thread worker = new Thread(() -> {
                try {
                    switch (mode) {
                        case "mutex": runMutex(client, recipePath, markerDir, rounds, who); break;
                        case "rwlock": runReadWrite(client, recipePath, markerDir, rounds, who); break;
                        case "latch": runLatch(client, recipePath, markerDir, rounds, who); break;
                        case "produce": runProduce(client, recipePath, rounds); break;
                        default: throw new IllegalArgumentException("unknown mode " + mode);
                    }
                } catch (Exception e) {
                    failures.incrementAndGet();
                    System.out.println("FAILURE " + who + " " + e);
                    e.printStackTrace(System.out);
                }
            });
            workers.add(worker);
            worker.start();
        }
        for (Thread worker : workers) {
            worker.join();
        }
        client.close();
        System.out.println("DONE violations=" + violations.get() + " failures=" + failures.get());
        System.out.flush();
        System.exit(violations.get() == 0 && failures.get() == 0 ? 0 : 1);
    }

    private static void say(String line) {
        synchronized (System.out) {
            System.out.println(line);
            System.out.flush();
        }
    }

    /** Appends our language to the turn log. */
    private static void logTurn(CuratorFramework client) throws Exception {
        client.create().withMode(CreateMode.PERSISTENT_SEQUENTIAL).forPath(logDir + "/t-", "java".getBytes("UTF-8"));
    }

    /** Creates the exclusive occupancy node; an existing one means someone else is inside. */
    private static String enterExclusive(CuratorFramework client, String marker, String who) throws Exception {
        logTurn(client);
        try {
            client.create().withMode(CreateMode.EPHEMERAL).forPath(marker, who.getBytes("UTF-8"));
        } catch (KeeperException.NodeExistsException e) {
            byte[] inside = client.getData().forPath(marker);
            violations.incrementAndGet();
            say("VIOLATION " + who + " entered while " + new String(inside, "UTF-8") + " is inside");
            return null;
        }
        return marker;
    }

    private static void leave(CuratorFramework client, String marker) throws Exception {
        if (marker != null) {
            client.delete().forPath(marker);
        }
    }

    private static void runMutex(CuratorFramework client, String path, String markerDir, int rounds, String who)
            throws Exception {
        InterProcessMutex mutex = new InterProcessMutex(client, path);
        for (int round = 0; round < rounds; round++) {
            if (!mutex.acquire(WAIT_SECONDS, TimeUnit.SECONDS)) {
                throw new IllegalStateException("mutex not acquired in time");
            }
            try {
                say("ENTER " + who);
                String marker = enterExclusive(client, markerDir + "/inside", who);
                Thread.sleep(5);
                leave(client, marker);
                say("EXIT " + who);
            } finally {
                mutex.release();
            }
        }
    }

    private static void runReadWrite(CuratorFramework client, String path, String markerDir, int rounds, String who)
            throws Exception {
        InterProcessReadWriteLock lock = new InterProcessReadWriteLock(client, path);
        for (int round = 0; round < rounds; round++) {
            boolean write = round % 2 == 0;
            InterProcessMutex side = write ? lock.writeLock() : lock.readLock();
            if (!side.acquire(WAIT_SECONDS, TimeUnit.SECONDS)) {
                throw new IllegalStateException("read/write lock not acquired in time");
            }
            try {
                if (write) {
                    say("WRITE " + who);
                    String marker = enterExclusive(client, markerDir + "/writer", who);
                    List<String> readers = client.getChildren().forPath(markerDir + "/readers");
                    if (!readers.isEmpty()) {
                        violations.incrementAndGet();
                        say("VIOLATION " + who + " writes while readers " + readers + " read");
                    }
                    Thread.sleep(5);
                    leave(client, marker);
                } else {
                    say("READ " + who);
                    logTurn(client);
                    String marker = client.create().withMode(CreateMode.EPHEMERAL_SEQUENTIAL)
                            .forPath(markerDir + "/readers/r-", who.getBytes("UTF-8"));
                    if (client.checkExists().forPath(markerDir + "/writer") != null) {
                        violations.incrementAndGet();
                        say("VIOLATION " + who + " reads while a writer writes");
                    }
                    Thread.sleep(5);
                    client.delete().forPath(marker);
                }
            } finally {
                side.release();
            }
        }
    }

    private static final QueueSerializer<byte[]> BYTES = new QueueSerializer<byte[]>() {
        @Override
        public byte[] serialize(byte[] item) {
            return item;
        }

        @Override
        public byte[] deserialize(byte[] bytes) {
            return bytes;
        }
    };

    private static void runProduce(CuratorFramework client, String path, int rounds) throws Exception {
        DistributedQueue<byte[]> queue = QueueBuilder.builder(client, null, BYTES, path + "/queue")
                .putInBackground(false).buildQueue();
        queue.start();
        for (int i = 0; i < rounds; i++) {
            queue.put(("java-" + i).getBytes("UTF-8"));
        }
        final String[] multi = {"multi-a", "multi-b"};
        final int[] next = {0};
        queue.putMulti(new MultiItem<byte[]>() {
            @Override
            public byte[] nextItem() throws Exception {
                return next[0] < multi.length ? multi[next[0]++].getBytes("UTF-8") : null;
            }
        });
        queue.close();
        say("QUEUED " + rounds);

        DistributedPriorityQueue<byte[]> priority = QueueBuilder.builder(client, null, BYTES, path + "/priority")
                .putInBackground(false).buildPriorityQueue(0);
        priority.start();
        for (int i = 0; i < rounds; i++) {
            priority.put(("p" + i).getBytes("UTF-8"), rounds - i);
        }
        priority.close();
        say("PRIORITIZED " + rounds);

        SharedCount count = new SharedCount(client, path + "/count", 0);
        count.start();
        for (int i = 0; i < rounds; i++) {
            while (true) {
                VersionedValue<Integer> current = count.getVersionedValue();
                if (count.trySetCount(current, current.getValue() + 1)) {
                    break;
                }
            }
        }
        say("COUNTED " + count.getCount());
        count.close();
    }

    private static void runLatch(CuratorFramework client, String path, String markerDir, int rounds, String who)
            throws Exception {
        for (int round = 0; round < rounds; round++) {
            LeaderLatch latch = new LeaderLatch(client, path, who + "-" + round);
            latch.start();
            try {
                if (!latch.await(WAIT_SECONDS, TimeUnit.SECONDS)) {
                    throw new IllegalStateException("leadership not gained in time");
                }
                say("LEAD " + who);
                String marker = enterExclusive(client, markerDir + "/leader", who);
                Thread.sleep(5);
                leave(client, marker);
            } finally {
                latch.close();
            }
        }
    }
}
