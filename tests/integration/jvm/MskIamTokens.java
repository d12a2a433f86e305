import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import javax.security.auth.callback.Callback;
import javax.security.auth.login.AppConfigurationEntry;
import javax.security.sasl.SaslClient;
import org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule;
import org.apache.kafka.common.security.oauthbearer.OAuthBearerTokenCallback;
import software.amazon.msk.auth.iam.IAMClientCallbackHandler;
import software.amazon.msk.auth.iam.IAMLoginModule;
import software.amazon.msk.auth.iam.IAMOAuthBearerLoginCallbackHandler;
import software.amazon.msk.auth.iam.internals.AWS4SignedPayloadGenerator;
import software.amazon.msk.auth.iam.internals.IAMSaslClient;

/**
 * Prints what MSK's JVM IAM handlers send a broker, signed from the default credential chain:
 * line 1 the OAUTHBEARER token, line 2 the AWS_MSK_IAM initial response (JSON). Run by
 * tests/integration/test_kafka_msk_iam_jvm.py with static test credentials; no network.
 *
 * Usage: java -cp <jars> MskIamTokens.java <broker host>
 */
public class MskIamTokens {
    public static void main(String[] args) throws Exception {
        String brokerHost = args[0];

        IAMOAuthBearerLoginCallbackHandler oauth = new IAMOAuthBearerLoginCallbackHandler();
        oauth.configure(Map.of(), "OAUTHBEARER", List.of(entry(OAuthBearerLoginModule.class)));
        OAuthBearerTokenCallback tokenCallback = new OAuthBearerTokenCallback();
        oauth.handle(new Callback[] {tokenCallback});
        System.out.println(tokenCallback.token().value());

        IAMClientCallbackHandler iam = new IAMClientCallbackHandler();
        iam.configure(Map.of(), "AWS_MSK_IAM", List.of(entry(IAMLoginModule.class)));
        // The client Kafka's SaslClientAuthenticator gets from the provider for AWS_MSK_IAM.
        SaslClient client = new IAMSaslClient(
                "AWS_MSK_IAM", iam, brokerHost, new AWS4SignedPayloadGenerator());
        byte[] response = client.evaluateChallenge(new byte[0]);
        System.out.println(new String(response, StandardCharsets.UTF_8));
    }

    private static AppConfigurationEntry entry(Class<?> loginModule) {
        return new AppConfigurationEntry(
                loginModule.getName(),
                AppConfigurationEntry.LoginModuleControlFlag.REQUIRED,
                Map.of());
    }
}
